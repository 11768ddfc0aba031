"""`serl learner TASK`: the learner half of a run, serving actors over ZeroMQ (`serl actor` is the
other half, on the robot PC). Stops cleanly on SIGINT/SIGTERM with a checkpoint; `--resume`
continues the run. It builds no env: its spaces come from the env contract."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from serl.commands.config_args import parse_task_config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl learner", description=__doc__)
    parser.add_argument("--run", default=None,
                        help="run name (default: the task name); the run is runs_dir/RUN")
    parser.add_argument("--resume", action="store_true",
                        help="continue an existing run from its checkpoint")
    args, config = parse_task_config(parser, argv)
    from serl.commands.errors import refusal, run_command
    from serl.learner.prior import check_prior
    from serl.learner.wandb_config import require_wandb
    from serl.networks.config import check_trunk_weights
    from serl.run_dir import RunDirError, prepare_run_dir
    from serl.transport.security import check_bind

    t = config.transport  # refused before anything is written or bound
    if code := refusal("serl learner",
                       lambda: check_bind(t.bind_host, bool(t.curve_keys),
                                          t.allow_unauthenticated_network),
                       lambda: check_trunk_weights(config.agent.encoder),
                       lambda: require_wandb(config.learner.wandb),
                       lambda: check_prior(config)):
        return code
    run_dir = Path(config.runs_dir) / (args.run or args.task)
    try:
        run_dir = prepare_run_dir(run_dir, config, args.resume, task=args.task)
    except RunDirError as err:
        parser.error(str(err))
    return run_command("serl learner", lambda: run_learner(config, run_dir, args.resume))


def run_learner(config, run_dir: Path, resume: bool) -> int:
    """Serve the run's actors over ZeroMQ until a budget or SIGINT/SIGTERM."""
    from serl.commands.runtime import configure_logging, stop_on_signals
    from serl.learner.build import build_learner, zmq_learner_side

    configure_logging()
    stop = stop_on_signals()
    # a file-size limit (ulimit -f) is a write error, not a crash
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    side = zmq_learner_side(config, run_dir.name)
    try:
        learner = build_learner(config, side, run_dir, resume)
    except BaseException:
        side.close()
        raise
    t = config.transport
    logging.getLogger("serl.learner").info(
        "serving actors on %s:%d (weights on port %d), run folder %s", t.bind_host, t.data_port,
        t.weights_port, run_dir)
    try:
        counters = learner.run(stop)
    finally:
        learner.close()
        side.close()
    print(f"learner stopped at update {counters.updates} (incarnation {counters.incarnation}); "
          f"run folder {run_dir}")
    return 0
