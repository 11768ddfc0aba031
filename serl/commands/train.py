"""`serl train TASK`: learner and actor together. By default they are two processes (`serl learner`
and `serl actor`) talking ZeroMQ over loopback; `--single-process` runs both here over the
in-process transport (the actor on a thread). The run stops at the learner's or the actor's budget,
or on Ctrl+C, always with a checkpoint."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from serl.commands.config_args import parse_task_config


def run_single_process(config, run_dir: Path, resume: bool, make_env=None) -> dict:
    """Learner and actor (on a thread) over the in-process transport, built as the two processes
    build them (`build_learner`, `build_actor`: the same frame codec round trip included). The
    actor's env (`make_env()`, default `build_env(config)`) is built, used and closed on the
    actor's thread: an EGL renderer works only on the thread that made it."""
    from serl.actor.build import build_actor, inprocess_actor_side
    from serl.commands.actor import dashboard_token_path
    from serl.commands.runtime import stop_on_signals
    from serl.dashboard.opening import open_dashboard
    from serl.learner.build import build_learner, inprocess_learner_side
    from serl.transport.inprocess import InProcessTransport

    stop = stop_on_signals()
    transport = InProcessTransport()
    learner = build_learner(config, inprocess_learner_side(transport), run_dir, resume)
    # sequences the buffers already hold
    stored = learner.online.watermarks().get(config.actor.actor_id, -1) + 1
    side = inprocess_actor_side(transport, config, stored)
    # the actor's start-up wait returns at once
    learner.publish()
    actors, failure = [], []
    try:  # a custom env (tests) has no page buttons merged in: then the page is a view only
        dashboard = open_dashboard(config.dashboard, dashboard_token_path(run_dir / "actor",
                                                                          config),
                                   controls=make_env is None)
    except BaseException:
        learner.close()
        raise

    def act():
        try:
            env = None if make_env is None else make_env()
            actors.append(build_actor(config, side, run_dir / "actor", env, dashboard))
            actors[0].run(stop)
        except BaseException as err:
            # re-raised below: a crashed actor must not look like a finished run
            failure.append(err)
        finally:
            stop.set()  # the actor's budget ends the run
            if actors:
                actors[0].env.close()

    thread = threading.Thread(target=act, name="actor", daemon=True)
    thread.start()
    try:
        counters = learner.run(stop)
    finally:
        stop.set()
        thread.join(timeout=30)
        if dashboard is not None:
            dashboard.close()
        # everything the actor produced is stored before the run ends
        while learner.ingest(timeout=0.1):
            pass
        learner.checkpoint()
        learner.close()
    if failure:
        raise RuntimeError("the actor failed") from failure[0]
    actor = actors[0].counters
    return {"updates": counters.updates, "env_steps": actor.env_steps,
            "episodes": actor.episodes, "run_dir": str(run_dir)}


def run_two_processes(argv_rest: list[str], task: str, run: str | None, resume: bool) -> int:
    """Start `serl learner` and `serl actor` with the same task and overrides; when either ends,
    stop the other."""
    import signal
    import subprocess
    import sys
    import time

    ports = ("--transport.data-port", "--transport.weights-port")
    if not any(a.startswith(ports) for a in argv_rest):
        # two runs on one machine never share a port
        argv_rest = [*argv_rest, *free_port_overrides()]
    common = [task, *argv_rest] + (["--run", run] if run else [])
    learner = subprocess.Popen([sys.executable, "-m", "serl.cli", "learner", *common,
                                *(["--resume"] if resume else [])])
    actor = subprocess.Popen([sys.executable, "-m", "serl.cli", "actor", *common])
    procs = {"learner": learner, "actor": actor}

    def forward(signum, _frame):
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while all(p.poll() is None for p in procs.values()):
        time.sleep(0.2)
    for p in procs.values():  # the one still running finishes cleanly: flush, checkpoint
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = {name: p.wait(timeout=120) for name, p in procs.items()}
    return max(abs(c) for c in codes.values())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl train", description=__doc__)
    parser.add_argument("--run", default=None,
                        help="run name (default: the task name); the run is runs_dir/RUN")
    parser.add_argument("--resume", action="store_true", help="continue an existing run")
    parser.add_argument("--single-process", action="store_true",
                        help="learner and actor in this process")
    args, config = parse_task_config(parser, argv)
    from serl.commands.errors import refusal
    from serl.learner.prior import check_prior
    from serl.learner.wandb_config import require_wandb
    from serl.networks.config import check_trunk_weights

    if code := refusal("serl train", lambda: check_trunk_weights(config.agent.encoder),
                       lambda: require_wandb(config.learner.wandb),
                       lambda: check_prior(config)):
        return code  # before demos are recorded or a process started
    if config.demo_episodes and not any(Path(config.demos_dir).glob("*.npz")):
        from serl.commands.record_demos import record

        print(f"no demonstrations in {config.demos_dir}/: recording {config.demo_episodes} with "
              "the scripted operator first")
        record(config, Path(config.demos_dir), config.demo_episodes)
    run_dir = Path(config.runs_dir) / (args.run or args.task)
    if not args.single_process:
        # the learner process owns the run folder (and refuses or resumes it)
        own = ("--single-process", "--resume", args.task)
        rest = _without_option([a for a in argv if a not in own], "--run")
        code = run_two_processes(rest, args.task, args.run, args.resume)
        if (run_dir / "config.json").exists():
            print(run_summary(run_dir, args.task), flush=True)
        return code
    from serl.commands.errors import run_command
    from serl.commands.runtime import configure_logging
    from serl.run_dir import RunDirError, prepare_run_dir

    configure_logging()
    try:
        run_dir = prepare_run_dir(run_dir, config, args.resume, task=args.task)
    except RunDirError as err:
        parser.error(str(err))
    return run_command("serl train", lambda: train_here(config, run_dir, args.task, args.resume))


def train_here(config, run_dir: Path, task: str, resume: bool) -> int:
    """`--single-process`: train, then say how it went."""
    summary = run_single_process(config, run_dir, resume)
    print(f"trained {summary['updates']} updates on {summary['env_steps']} env steps "
          f"({summary['episodes']} episodes)")
    print(run_summary(run_dir, task), flush=True)
    return 0


def free_port_overrides() -> list[str]:
    """Config overrides naming two loopback ports free right now (the learner binds them a moment
    later)."""
    from serl.ports import free_ports

    data, weights = free_ports(2)
    return ["--transport.data-port", str(data), "--transport.weights-port", str(weights)]


def run_summary(run_dir: Path, task: str) -> str:
    """What a person wants to know when a run ends: how well it does, where its files are, what to
    run next."""
    from serl.monitor import RunMonitor

    monitor = RunMonitor(run_dir)
    evals = monitor.history.evals
    videos = sorted((run_dir / "videos").glob("eval_*.mp4"))
    steps = sorted((run_dir / "checkpoints").glob("[0-9]*"), key=lambda p: int(p.name))
    curve_note = "" if (run_dir / "curve.png").exists() else " (not drawn yet)"
    last = ", ".join(f"{100 * e['eval_success']:.0f}%" for e in evals[-3:]) or "none yet"
    lines = [
        f"run folder:   {run_dir}/",
        f"evaluation:   last {min(3, len(evals))} evaluations (no interventions) {last}, "
        f"after {monitor.env_steps} env steps",
        f"curve:        {run_dir / 'curve.png'}{curve_note}",
        f"video:        {videos[-1] if videos else '(none yet)'}",
        f"checkpoint:   {steps[-1] if steps else '(none yet)'}",
    ]
    commands = [(f"serl eval {run_dir} --episodes 20", "success of this checkpoint, with videos"),
                (f"serl train {task} --run {run_dir.name} --resume", "continue this run"),
                ("serl train sim_pick_cube",
                 "the same skill from two 128x128 cameras (pixels, ~21 min to 90% here)"),
                (f"tensorboard --logdir {run_dir.parent}", "learner and episode curves")]
    width = max(len(c) for c, _ in commands)
    lines += ["next:"] + [f"  {c:<{width}}  # {why}" for c, why in commands]
    return "\n".join(lines)


def _without_option(argv: list[str], name: str) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out
