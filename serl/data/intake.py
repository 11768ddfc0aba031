"""Which transitions of an incoming batch get stored: not duplicates, selected, and valid.

Kept apart from the storage so the policy (watermarks, the selection mask, raise-or-drop) reads in
one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serl.data.schema import OBSERVATION_FIELDS, Batch, TransitionSpec, batch_len, take

# A transition `{INVALID: reason}` stands in for one the transport could not deliver (undecodable,
# or observations it cannot rebuild): stored as invalid, with `reason` as its problem.
INVALID = "invalid"


@dataclass(frozen=True)
class Intake:
    """The transitions to store (None if none) with their sequences, and what was left out
    and why."""

    batch: Batch | None
    sequences: np.ndarray
    duplicates: int
    invalid: int
    skipped: int  # valid or not, left out by the selection mask
    first_error: str | None
    last_sequence: int  # the actor's watermark once this batch is committed


def intake(spec: TransitionSpec, batch: Any, watermark: int, first_sequence: int, keep: Any = None,
           on_invalid: str = "raise", action_limit: float | None = None) -> Intake:
    """Split a batch dict or list of transitions with sequences first_sequence, ... (see
    `ReplayStorage.append`)."""
    if on_invalid not in ("raise", "drop"):
        raise ValueError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
    is_dict = isinstance(batch, Mapping)
    n = batch_len(batch) if is_dict else len(batch)
    selected = np.ones(n, bool) if keep is None else np.asarray(keep, bool).reshape(-1)
    if len(selected) != n:
        raise ValueError(f"keep has {len(selected)} entries for a batch of {n}")
    duplicates = int(np.clip(watermark - first_sequence + 1, 0, n))
    selected[:duplicates] = False
    rows = np.flatnonzero(selected)
    last = max(watermark, first_sequence + n - 1) if n else watermark
    if is_dict:  # structure first: rows cannot be selected from a malformed batch
        try:
            spec.check_structure(batch)
        except ValueError as e:
            if on_invalid == "raise":
                raise ValueError(f"invalid batch, nothing appended: {e}") from None
            return Intake(None, rows[:0], duplicates, len(rows), n - duplicates - len(rows),
                          str(e), last)
    fresh = (batch if len(rows) == n else take(batch,
                                               rows)) if is_dict else [batch[i] for i in rows]
    valid, kept, first_error = split_valid(spec, fresh, on_invalid,
                                           action_limit) if len(rows) else (None, rows, None)
    return Intake(valid, first_sequence + rows[kept], duplicates, len(rows) - len(kept),
                  n - duplicates - len(rows), first_error, last)


def split_valid(spec: TransitionSpec, fresh: Any, on_invalid: str,
                action_limit: float | None = None) -> tuple[Batch | None, np.ndarray, str | None]:
    """(valid transitions as a batch or None, their positions in `fresh`, the distinct problems or
    None).

    `fresh` is a batch dict or a list of transitions. With `on_invalid="raise"` any problem raises
    ValueError naming the row and field. A batch dict with a structural problem has no valid row; a
    list is judged per transition.
"""
    if isinstance(fresh, Mapping):
        n, errors = batch_len(fresh), {}
        try:
            spec.check_structure(fresh)
            batch, keep = fresh, np.arange(n)
        except ValueError as e:
            batch, keep, errors = None, np.empty(0, np.int64), {i: str(e) for i in range(n)}
    else:  # structure per transition; values once, on the stacked batch
        errors = {i: p for i, t in enumerate(fresh) if (p := _problems(spec, t))}
        keep = np.asarray([i for i in range(len(fresh)) if i not in errors], np.int64)
        batch = stack_lean(spec, [fresh[i] for i in keep]) if len(keep) else None
    if batch is not None:
        errors.update({int(keep[r]): msg for r, msg in spec.nonfinite_rows(batch).items()})
        if action_limit is not None:
            for r, msg in spec.action_rows_outside(batch, action_limit).items():
                errors.setdefault(int(keep[r]), msg)
    first = min(errors.items(), default=None)
    if first is None:
        return batch, keep, None
    if on_invalid == "raise":
        raise ValueError(f"batch row {first[0]} is invalid, nothing appended: {first[1]}")
    if batch is not None:
        finite = np.asarray([int(i) not in errors for i in keep], bool)
        batch, keep = take(batch, finite), keep[finite]
    # distinct problems, first first
    kinds = list(dict.fromkeys(msg for _, msg in sorted(errors.items())))
    return (batch if len(keep)
            else None), keep, "; ".join(kinds[:4]) + ("; ..." if len(kinds) > 4 else "")


def _problems(spec: TransitionSpec, transition: Any) -> str:
    if isinstance(transition, Mapping) and transition.keys() == {INVALID}:
        return str(transition[INVALID])
    return "; ".join(spec.structure_problems(transition))


class FrameRows:
    """One camera's frames of a list of transitions, left unstacked: stacking would copy every
    frame, and a storage copies only the frames it stores (not an observation it links to an
    already stored one). Indexing by an int gives that row's frame; by a slice, an index array or
    a boolean mask, the selected rows."""

    __slots__ = ("frames",)

    def __init__(self, frames):
        self.frames = tuple(frames)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index):
        if isinstance(index, int | np.integer):
            return self.frames[index]
        if isinstance(index, slice):
            return FrameRows(self.frames[index])
        index = np.asarray(index)
        rows = np.flatnonzero(index) if index.dtype == bool else index
        return FrameRows(self.frames[int(i)] for i in rows)


def stack_lean(spec: TransitionSpec, transitions: list[Mapping[str, Any]]) -> Batch:
    """Structurally valid transitions as a batch: every leaf stacked but camera frames
    (`FrameRows`)."""
    cameras = set(spec.camera_keys)
    out: Batch = {}
    for name in transitions[0]:
        if name in OBSERVATION_FIELDS:
            out[name] = {k: (FrameRows if k in cameras else np.stack)([t[name][k]
                                                                        for t in transitions])
                         for k in transitions[0][name]}
        else:
            out[name] = np.stack([t[name] for t in transitions])
    return out
