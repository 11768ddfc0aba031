"""The one marker for config fields that `--resume` may change (budgets, logging): any other field
that differs from the run's saved config is refused, naming it (`serl.run_dir`)."""

from __future__ import annotations

import dataclasses
from typing import Any

RESUMABLE = {"resumable": True}


def resumable(default: Any = dataclasses.MISSING, **kwargs) -> Any:
    """A dataclass field that `--resume` may change: `max_updates: int | None = resumable(None)`."""
    return dataclasses.field(default=default, metadata=RESUMABLE, **kwargs)


def is_resumable(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("resumable"))
