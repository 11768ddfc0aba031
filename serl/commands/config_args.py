"""Parse `TASK [--section.field value ...]` into a task's typed config with tyro; an unknown field
or a bad value is an error that names it. `SUB --help` without a task prints the subcommand's own
options and the tasks; `SUB TASK --help` adds that task's config fields."""

from __future__ import annotations

import argparse
import sys

import experiments
from serl.commands.tasks import task_lines

HELP_FLAGS = ("-h", "--help")
# how far a residual may move the base's action (in action units), unless a run says otherwise
DEFAULT_RESIDUAL_SCALE = 0.5


def parse_task_config(parser: argparse.ArgumentParser, argv: list[str]):
    """Parse the subcommand's own options with `parser` (which must not define a positional), then
    TASK, then the config overrides. Returns (options namespace, config)."""
    names = ", ".join(experiments.names())
    task = parser.add_argument("task", metavar="TASK", help=f"one of: {names}")
    usage = parser.format_usage().removeprefix("usage: ").rstrip()
    parser.usage = usage + " [--section.field VALUE ...]"
    # Optional to argparse only so that `SUB --help` reaches the help below; a missing TASK is
    # refused there.
    task.nargs, task.required = "?", False
    parser.add_argument("--base-policy", metavar="FILE", default=None,
                        help="RL on this base policy (a serl train-bc file, or tcp://HOST:PORT of "
                        "serl serve-policy); residual mode sets --wrappers.base-policy FILE and, "
                        f"unless given, --agent.residual-scale {DEFAULT_RESIDUAL_SCALE}")
    parser.add_argument("--base-mode", choices=("residual", "warm-start"), default="residual",
                        help="warm-start: the policy starts as the file's (--learner.warm-start "
                        "FILE) and the critics are pre-trained on the demos first")
    parser.epilog = (parser.epilog + "\n\n" if parser.epilog else "") + (
        "Any config field can be overridden, e.g. --env.max-episode-steps 50 "
        "(TASK --help lists them).")
    wants_help = any(a in HELP_FLAGS for a in argv)
    args, rest = parser.parse_known_args([a for a in argv if a not in HELP_FLAGS])
    if args.task is None:
        if not wants_help:
            parser.error("the following arguments are required: TASK")
        parser.print_help()
        print(f"\n{parser.prog} TASK --help lists that task's config fields. Tasks:")
        print("\n".join(f"  {line}" for line in task_lines()))
        sys.exit(0)
    try:
        default = experiments.load(args.task)
    except ValueError as err:
        parser.error(str(err))
    if wants_help:
        parser.print_help()
        print()
    if args.base_mode != "residual" and args.base_policy is None:
        parser.error("--base-mode warm-start needs --base-policy FILE")
    if args.base_policy is not None and args.base_mode == "warm-start":
        rest = [*rest, "--learner.warm-start", args.base_policy]
    elif args.base_policy is not None:
        rest = [*rest, "--wrappers.base-policy", args.base_policy]
        if not any(a.startswith("--agent.residual-scale") for a in rest):
            rest += ["--agent.residual-scale", str(DEFAULT_RESIDUAL_SCALE)]
    import tyro  # after the checks above: `SUB --help` and a bad task name answer without it

    try:
        config = tyro.cli(type(default), default=default,
                          args=rest + (["--help"] if wants_help else []),
                          prog=f"{parser.prog} {args.task}")
    except ValueError as err:  # a value tyro parsed but the config's own validation refused
        parser.error(f"invalid configuration: {err}")
    return args, config
