"""`serl learner TASK`: the learner half of a run, serving actors over ZeroMQ (`serl actor` is the other half,
on the robot PC). Stops cleanly on SIGINT/SIGTERM with a checkpoint; `--resume` continues the run."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from serl.commands.config_args import parse_task_config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl learner", description=__doc__)
    parser.add_argument("--run", default=None, help="run name (default: the task name); the run is runs_dir/RUN")
    parser.add_argument("--resume", action="store_true", help="continue an existing run from its checkpoint")
    args, config = parse_task_config(parser, argv)
    # force: importing orbax (via the configs) already gave the root logger absl's WARNING-level handler
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's INFO lines on every checkpoint
    from serl.commands.runtime import build_env, handshake_info, stop_on_signals, transition_spec
    from serl.learner import DiskWriteError, Learner
    from serl.run_dir import RunDirError, prepare_run_dir
    from serl.transport.keys import LearnerCurve
    from serl.transport.zmq_learner import ZmqLearnerTransport

    try:
        run_dir = prepare_run_dir(Path(config.runs_dir) / (args.run or args.task), config, args.resume)
    except RunDirError as err:
        parser.error(str(err))
    stop = stop_on_signals()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit (ulimit -f) is a write error, not a crash
    env = build_env(config, operator=False)  # for the spaces only
    spec = transition_spec(env)
    t = config.transport
    curve = LearnerCurve.from_dir(Path(t.curve_keys) / "learner") if t.curve_keys else None
    try:
        transport = ZmqLearnerTransport(spec, handshake_info(config, spec, run_dir.name), t.bind_host, t.data_port,
                                        t.weights_port, curve)
    except OSError as err:  # a port in use: say which, no traceback
        print(f"serl learner: {err}", file=sys.stderr)
        return 2
    learner = Learner(config.agent, config.learner, env.observation_space, env.action_space, run_dir, transport,
                      transport, seed=config.seed, resume=args.resume, demos_dir=config.demos_dir)
    env.close()
    logging.getLogger("serl.learner").info("serving actors on %s:%d (weights on port %d), run folder %s",
                                           t.bind_host, t.data_port, t.weights_port, run_dir)
    try:
        counters = learner.run(stop)
    except DiskWriteError as err:  # learner.on_disk_error=stop: a clear message, no traceback
        print(f"serl learner: {err}", file=sys.stderr)
        return 3
    finally:
        learner.close()
        transport.close()
    print(f"learner stopped at update {counters.updates} (incarnation {counters.incarnation}); run folder {run_dir}")
    return 0
