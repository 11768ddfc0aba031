"""`serl export SOURCE OUT --format lerobot`: a run's buffers or a demos folder as one
LeRobotDataset v3.0 folder (parquet + one mp4 stream per camera; docs/datasets.md).

SOURCE is a run folder (its config.json says the task; `--buffers` picks online, demo or both) or a
demos folder (the task is `--task`, else the folder's name, and config overrides may follow, as
the demos were recorded: `--wrappers.arm-axes x y z yaw`). Streamed with a progress line; the
run's learner must be stopped (its buffers are locked while it runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("lerobot",)


def task_config(task: str, overrides: list[str], prog: str):
    """A task's config with `--section.field VALUE` overrides (tyro names a bad one)."""
    import experiments

    default = experiments.load(task)
    if not overrides:
        return default
    import tyro

    return tyro.cli(type(default), default=default, args=overrides, prog=prog)


def source_config(source: Path, task: str | None, overrides: list[str],
                  parser) -> tuple[str, object]:
    """(task name, config) of SOURCE: a run's recorded config, or a demos folder's task."""
    import experiments
    from serl.config_io import ConfigRecordError, load_run_config

    if (source / "config.json").is_file():
        if overrides or task:
            parser.error("a run's config is its own: --task and overrides apply to a demos folder")
        try:
            name, config = load_run_config(source)
        except ConfigRecordError as err:
            parser.error(f"cannot rebuild the config of {source}: {err}")
        return name or source.name, config
    if not source.is_dir() or not any(source.glob("*.npz")):
        parser.error(f"{source} is neither a run folder (config.json) nor a demos folder (.npz "
                     "episode files)")
    task = task or source.name
    if task not in experiments.names():
        parser.error(f"which task recorded {source}? name it: --task TASK (one of "
                     f"{', '.join(experiments.names())})")
    return task, task_config(task, overrides, f"{parser.prog} --task {task}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl export", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE", type=Path,
                        help="a run folder (runs/NAME) or a demos folder (demos/TASK)")
    parser.add_argument("out", metavar="OUT", type=Path, help="the dataset folder to create")
    parser.add_argument("--format", choices=FORMATS, default="lerobot",
                        help="dataset format (LeRobotDataset v3.0)")
    parser.add_argument("--buffers", choices=("online", "demo", "both"), default="online",
                        help="a run's buffers to export (default online: every transition once; "
                             "demo: demos and intervention steps)")
    parser.add_argument("--task", default=None,
                        help="the task that recorded a demos folder (default: its folder name)")
    parser.add_argument("--instruction", default=None,
                        help="the dataset's task string (default: the task name)")
    parser.add_argument("--crf", type=int, default=None,
                        help="H.264 quality, 0 (lossless) to 51 (default 23)")
    args, overrides = parser.parse_known_args(argv)
    if overrides and not overrides[0].startswith("--"):
        parser.error(f"unrecognized arguments: {' '.join(overrides)}")
    source = args.source
    if args.out.exists():  # before anything is read: a run's buffers take a while to load
        print(f"{parser.prog}: {args.out} exists; name a new folder", file=sys.stderr)
        return 2
    task, config = source_config(source, args.task, overrides, parser)
    from serl.datasets.export import export_buffers, export_demos
    from serl.datasets.sources import run_buffers
    from serl.datasets.video import DEFAULT_CRF

    crf = DEFAULT_CRF if args.crf is None else args.crf
    if not 0 <= crf <= 51:
        parser.error(f"--crf must be within 0..51, got {crf}")
    instruction = args.instruction or task
    progress = lambda line: print(line, flush=True)  # noqa: E731
    try:
        if (source / "config.json").is_file():
            summary = export_buffers(run_buffers(source, args.buffers), args.out, config,
                                     instruction, crf, progress)
        else:
            summary = export_demos(source, args.out, config, instruction, crf, progress)
    except (ValueError, FileExistsError) as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 2
    print(f"wrote {summary.episodes} episodes ({summary.transitions} transitions) to "
          f"{summary.root}/ in {summary.seconds:.0f} s", flush=True)
    return 0
