"""Task configurations: each module defines `CONFIG`, a small override of
`experiments.base.ExperimentConfig`. Loading one imports no jax, flax, orbax or mujoco."""

from __future__ import annotations

import importlib
import pkgutil


def names() -> list[str]:
    """The task names: every module of this package but `base`."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")


def load(name: str):
    """The `CONFIG` of the task named `name`, or a ValueError that lists the valid names."""
    if name not in names():
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(names())}")
    return importlib.import_module(f"experiments.{name}").CONFIG
