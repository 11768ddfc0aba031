"""A run's folder: created once, refused if it exists unless resuming, and resumed only with the
same config (fields marked resumable may change; any other difference is refused naming the field).
Its config.json records the task and the config class with the resolved config
(`serl.config_io`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from serl.config_io import CLASS, TASK, config_record, split_record
from serl.durable import write_json
from serl.resumable import is_resumable

CONFIG_FILE = "config.json"


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


class RunDirError(Exception):
    """A run folder that cannot be created or resumed as asked; the message says why and what to
    do."""


def resumable_paths(config_type: type, prefix: str = "") -> set[str]:
    """Dotted paths of every dataclass field marked resumable (`serl.resumable`), recursively."""
    out: set[str] = set()
    for f in dataclasses.fields(config_type):
        path = prefix + f.name
        if is_resumable(f):
            out.add(path)
        field_type = f.type if isinstance(f.type, type) else None
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out |= resumable_paths(type(default), path + ".")
        elif field_type is not None and dataclasses.is_dataclass(field_type):
            out |= resumable_paths(field_type, path + ".")
    return out


def config_differences(saved: dict, current: dict, resumable: set[str]) -> list[str]:
    """Non-resumable fields whose values differ, as 'path: saved -> current'."""
    a, b = flatten(saved), flatten(current)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in resumable]


def record_differences(saved: dict, current: dict) -> list[str]:
    """The task and config class, where both records name them and they differ."""
    return [f"{key}: {saved[key]!r} -> {current[key]!r}" for key in (TASK, CLASS)
            if saved.get(key) is not None and current.get(key) is not None
            and saved[key] != current[key]]


def prepare_run_dir(run_dir: Path, config: Any, resume: bool, task: str | None = None) -> Path:
    """Create `run_dir` for a new run (writing the resolved config of task `task`), or check it for
    `--resume`."""
    run_dir = Path(run_dir)
    saved_path = run_dir / CONFIG_FILE
    current = config_record(config, task)
    if not resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(f"run folder {run_dir} already exists: pass --resume to continue it, "
                              "or choose another run name")
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(saved_path, current, indent=2)
        return run_dir
    if not saved_path.exists():
        raise RunDirError(f"cannot resume: {saved_path} does not exist (start the run without "
                          "--resume)")
    saved_task, saved_class, saved_config = split_record(json.loads(saved_path.read_text()))
    saved = {TASK: saved_task, CLASS: saved_class}
    diffs = record_differences(saved, current) + config_differences(
        saved_config, current["config"], resumable_paths(type(config)))
    if diffs:
        raise RunDirError("cannot resume with a different configuration; these fields are not "
                          "resumable: " + "; ".join(diffs))
    # Resumable fields may have changed; a task the caller did not name stays as recorded.
    write_json(saved_path, {**current, TASK: task or saved_task}, indent=2)
    return run_dir
