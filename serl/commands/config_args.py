"""Parse `TASK [--section.field value ...]` into a task's typed config with tyro; an unknown field or a bad value
is an error that names it."""

from __future__ import annotations

import argparse

import tyro

import experiments


def parse_task_config(parser: argparse.ArgumentParser, argv: list[str]):
    """Parse the subcommand's own options with `parser` (which must not define a positional), then TASK, then the
    config overrides. Returns (options namespace, config)."""
    parser.add_argument("task", help=f"one of: {', '.join(experiments.names())}")
    parser.epilog = "Any config field can be overridden, e.g. --env.max-episode-steps 50 (TASK --help lists them)."
    wants_help = "-h" in argv or "--help" in argv
    args, rest = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")] if wants_help else argv)
    try:
        default = experiments.load(args.task)
    except ValueError as err:
        parser.error(str(err))
    if wants_help:
        parser.print_help()
        print()
    try:
        config = tyro.cli(type(default), default=default, args=rest + (["--help"] if wants_help else []),
                          prog=f"{parser.prog} {args.task}")
    except ValueError as err:  # a value tyro parsed but the config's own validation refused
        parser.error(f"invalid configuration: {err}")
    return args, config
