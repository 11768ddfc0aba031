"""`serl serve-policy FILE`: serve a policy file (`serl train-bc`) as a base policy for runs of its
task on other machines or processes (`--base-policy tcp://HOST:PORT`), until SIGINT/SIGTERM. The
protocol is `serl.serving.messages`; loopback by default, another --host only with --curve-keys
(the learner's key folder layout: `serl keys generate DIR`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl serve-policy", description=__doc__)
    parser.add_argument("file", type=Path, help="the policy file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5600, help="0: a free port (printed)")
    parser.add_argument("--curve-keys", type=Path, default=None,
                        help="a `serl keys generate` folder: serve with CURVE (needed off "
                        "loopback); clients need a key of its authorized folder")
    args = parser.parse_args(argv)
    from serl.commands.errors import run_command

    return run_command("serl serve-policy", lambda: serve(args))


def serve(args) -> int:
    from serl.agents.policy_file import load_policy
    from serl.commands.runtime import configure_logging, stop_on_signals
    from serl.serving.server import PolicyServer
    from serl.transport.keys import LearnerCurve

    configure_logging()
    stop = stop_on_signals()
    curve = LearnerCurve.from_dir(args.curve_keys / "learner") if args.curve_keys else None
    server = PolicyServer(load_policy(args.file), args.host, args.port, curve).start()
    print(f"serving {args.file} ({server.identity}) at tcp://{args.host}:{server.port}",
          flush=True)
    try:
        while not stop.wait(1.0):  # a timed wait: signals are handled between waits
            if not server.alive:
                raise RuntimeError("the policy server's thread ended; see the log above")
    finally:
        server.close()
    print(f"served {server.counters['requests']} requests ({server.counters['errors']} failed, "
          f"{server.counters['bad_messages']} bad)")
    return 0
