"""Derived features computed once per observation, across the buffers one intake fills: an
intervention step goes to the online and the demo buffer, and its frames pass the frozen trunk
once (`FeatureMemo`, shared by both storages). Observations are recognised by the identity of
their values (the very read-only objects both appends were given), never by content.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from serl.data.episodes import Observation, SlotPlan, frozen
from serl.data.layout import StorageLayout


class FeatureMemo:
    """Feature records of the newest `size` observations of read-only values, by the identity of
    those values. One writer at a time (the intake's thread)."""

    def __init__(self, size: int = 256):
        self.size = size
        # id key -> (the observation, so its values stay alive and ids unique; its record)
        self._entries: OrderedDict[tuple[int, ...], tuple[Observation, np.void]] = OrderedDict()

    def get(self, obs: Observation) -> np.void | None:
        entry = self._entries.get(_key(obs))
        if entry is None or not all(entry[0].get(k) is v for k, v in obs.items()):
            return None
        return entry[1]

    def put(self, obs: Observation, record: np.void) -> None:
        self._entries[_key(obs)] = (dict(obs), record.copy())
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _key(obs: Observation) -> tuple[int, ...]:
    return tuple(id(v) for v in obs.values())


def slot_sources(plan: SlotPlan, objects: Sequence[tuple[Observation, Observation]] | None,
                 first_new_slot: int, n_new: int) -> list[Observation | None]:
    """The observation (as the caller gave it) each new slot of `plan` is copied from."""
    sources: list[Observation | None] = [None] * n_new
    if objects is not None:
        for row in plan.new_obs_rows:
            sources[plan.obs_slot[row] - first_new_slot] = objects[row][0]
        for row, slot in enumerate(plan.next_slot):
            sources[slot - first_new_slot] = objects[row][1]
    return sources


def feature_records(layout: StorageLayout, feature_fn: Callable[[dict], Mapping[str, Any]],
                    new_slots: np.ndarray, sources: list[Observation | None],
                    memo: FeatureMemo | None) -> np.ndarray:
    """The feature records of `new_slots`: from `memo` where it knows the source observation,
    the rest computed by `feature_fn` in one call (before anything is written, so a failing fn
    writes nothing) and remembered."""
    out = np.empty(len(new_slots), layout.feature_dtype)
    known = [None if memo is None or s is None else memo.get(s) for s in sources]
    missing = np.asarray([j for j, record in enumerate(known) if record is None], np.int64)
    if len(missing):
        chosen = new_slots if len(missing) == len(new_slots) else new_slots[missing]
        inputs = {k: np.ascontiguousarray(chosen[k]) for k in new_slots.dtype.names}
        out[missing] = layout.feature_records(feature_fn(inputs), len(missing))
    for j, record in enumerate(known):
        if record is not None:
            out[j] = record
        elif memo is not None and sources[j] is not None and frozen(sources[j]):
            memo.put(sources[j], out[j])
    return out
