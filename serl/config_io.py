"""A run's config as the JSON its folder keeps (`config.json`) and back: the task name and the
config class (module and qualname) recorded with the resolved config, so `serl eval` and anything
else that rebuilds a run's config rebuilds the right class with its values, without knowing which
task file and overrides made it."""

from __future__ import annotations

import dataclasses
import importlib
import json
import types
import typing
from pathlib import Path
from typing import Any

# The record's keys: {"task": ..., "config_class": "module:qualname", "config": {...}}. A file
# without "config" is the older form, the resolved config alone.
TASK, CLASS, CONFIG = "task", "config_class", "config"
# The only packages a recorded config class may come from: a config.json names code to import.
CLASS_PACKAGES = ("experiments", "serl")


class ConfigRecordError(Exception):
    """A config.json whose config cannot be rebuilt; the message says why and what to do."""


def config_to_dict(config: Any) -> dict:
    """The resolved config as plain JSON values (nested dicts, lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def class_name(cls: type) -> str:
    """`module:qualname` of a class, as the record keeps it."""
    return f"{cls.__module__}:{cls.__qualname__}"


def config_record(config: Any, task: str | None) -> dict:
    """What config.json holds for a run of `config` (made from task `task`, when known)."""
    return {TASK: task, CLASS: class_name(type(config)), CONFIG: config_to_dict(config)}


def split_record(data: dict) -> tuple[str | None, str | None, dict]:
    """(task, config class name, resolved config) of a config.json's content, in either form."""
    if isinstance(data.get(CONFIG), dict):
        return data.get(TASK), data.get(CLASS), data[CONFIG]
    task = data.get(TASK)
    values = {k: v for k, v in data.items() if k != TASK}
    return (task if isinstance(task, str) else None), None, values


def config_class(name: str) -> type:
    """The experiment config class a record names, refusing anything but an `ExperimentConfig`
    dataclass from this project's packages (config.json is data, not a licence to import)."""
    from experiments.base import ExperimentConfig

    module, _, qualname = name.partition(":")
    if module.split(".")[0] not in CLASS_PACKAGES or not qualname or "<" in qualname:
        raise ConfigRecordError(f"config class {name!r} is not one of this project's configs")
    try:
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError) as err:
        raise ConfigRecordError(f"config class {name!r} no longer exists ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, ExperimentConfig)):
        raise ConfigRecordError(f"{name!r} is not an experiment config class")
    return cls


def rebuild(data: dict, fallback_task: str | None = None) -> tuple[str | None, Any]:
    """(task, config) from a config.json's content: as its recorded class; an older file without
    the record as its task's class (its recorded task, else `fallback_task`), or refused."""
    import experiments

    task, cls_name, values = split_record(data)
    if cls_name is None:
        task = task or (fallback_task if fallback_task in experiments.names() else None)
        if task is None:
            raise ConfigRecordError(
                "this config.json records neither the task nor the config class (written before "
                "they were recorded), so which config it is cannot be known; name the run folder "
                "after its task (runs/<task>) or add \"task\" and \"config_class\" to it")
        try:
            cls_name = class_name(type(experiments.load(task)))
        except ValueError as err:
            raise ConfigRecordError(str(err)) from None
    try:
        return task, from_dict(config_class(cls_name), values)
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigRecordError(f"config.json does not fit {cls_name}: {err}") from None


def load_run_config(run_dir: Path) -> tuple[str | None, Any]:
    """(task, config) of the run in `run_dir`; an older file without the record is read as the task
    its folder is named after, when it is one."""
    run_dir = Path(run_dir)
    try:
        data = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigRecordError(f"cannot read {run_dir / 'config.json'}: {err}") from None
    return rebuild(data, fallback_task=run_dir.name)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild dataclass `cls` from `dataclasses.asdict`-style data (lists become tuples where typed
    so)."""
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _value(hints[f.name], data[f.name])
              for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


def _value(tp: Any, value: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _value(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in value)
        if not args:
            return tuple(value)
        return tuple(_value(a, v) for a, v in zip(args, value, strict=True))
    return value
