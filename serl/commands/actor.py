"""`serl actor TASK`: the actor half of a run: steps the env (here the simulated arm with the
scripted operator at the intervention device) with the newest weights from the learner, spooling
every transition to disk first. Restarting with the same `--run` and `--actor.actor-id` continues
the sequence and resends what the learner never acknowledged."""

from __future__ import annotations

import argparse
from pathlib import Path

from serl.commands.config_args import parse_task_config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl actor", description=__doc__)
    parser.add_argument("--run", default=None,
                        help="run name (default: the task name); state in runs_dir/RUN/actor")
    args, config = parse_task_config(parser, argv)
    from serl.commands.errors import run_command

    return run_command("serl actor", lambda: run_actor(config, args.run or args.task))


def run_actor(config, run: str) -> int:
    """Act for run `run` over ZeroMQ until the step budget or SIGINT/SIGTERM."""
    from serl.actor.build import build_actor, zmq_actor_side
    from serl.commands.runtime import configure_logging, stop_on_signals
    from serl.dashboard.opening import open_dashboard

    configure_logging()
    stop = stop_on_signals()
    actor_dir = Path(config.runs_dir) / run / "actor"
    side = zmq_actor_side(config, actor_dir, run)
    dashboard = None
    try:
        dashboard = open_dashboard(config.dashboard, dashboard_token_path(actor_dir, config))
        actor = build_actor(config, side, actor_dir, dashboard=dashboard)
    except BaseException:
        if dashboard is not None:
            dashboard.close()
        side.close()
        raise
    try:
        counters = actor.run(stop)
    finally:
        try:
            if dashboard is not None:
                dashboard.close()
            side.close()
        finally:  # a rig's robot client and cameras close even if the transport's close fails
            actor.env.close()
    print(f"actor {config.actor.actor_id} stopped after {counters.env_steps} env steps "
          f"({counters.episodes} episodes)")
    return 0


def dashboard_token_path(actor_dir: Path, config) -> Path:
    """Where an actor keeps its dashboard token (kept across restarts of the run)."""
    return Path(actor_dir) / f"{config.actor.actor_id}.dashboard_token"
