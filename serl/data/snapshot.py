"""An immutable view of a storage's committed data, and reading transitions from it without any
lock.

The writer publishes a new `Snapshot` after every commit. A reader takes the current one (one
attribute read) and gathers from the chunk maps it holds: rows past its counts are never visible,
and chunks deleted since stay readable through the mappings the snapshot keeps alive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serl.data.chunks import group_by_chunk, read_field
from serl.data.layout import StorageLayout
from serl.data.schema import Batch


@dataclass(frozen=True)
class Snapshot:
    """Committed rows [start, n_rows) and the chunk maps covering them. Never mutated once
    published."""

    layout: StorageLayout | None = None
    n_rows: int = 0
    start: int = 0
    rows: dict = field(default_factory=dict)
    slots: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    watermarks: dict = field(default_factory=dict)

    def checked(self, indices: Any) -> np.ndarray:
        """Absolute row indices as an array; IndexError for any outside [start, n_rows)."""
        index = np.asarray(indices, np.int64).reshape(-1)
        bad = index[(index < self.start) | (index >= self.n_rows)]
        if len(bad):
            raise IndexError(f"indices {bad[:5].tolist()} outside the stored window [{self.start}, "
                             f"{self.n_rows})")
        return index

    def read_rows(self, index: np.ndarray) -> np.ndarray:
        """Row records (transitions without observations) by absolute index."""
        groups = group_by_chunk(self.rows, index, self.layout.chunk_size)
        return read_field(groups, None, np.empty(len(index), self.layout.row_dtype))

    def read(self, index: np.ndarray, images: bool) -> Batch:
        """Transitions by absolute index, observations and next observations gathered from their
        slots."""
        rows = self.read_rows(index)
        # one grouping
        both = self._read_slots(np.concatenate([rows["obs_slot"], rows["next_slot"]]), images)
        n = len(index)
        return self.layout.rows_to_batch(rows, {k: v[:n] for k, v in both.items()},
                                         {k: v[n:] for k, v in both.items()})

    def _read_slots(self, slots: np.ndarray, images: bool) -> dict[str, np.ndarray]:
        spec, size = self.layout.spec, self.layout.chunk_size
        cameras = set() if images else set(spec.camera_keys)
        groups = group_by_chunk(self.slots, slots, size)
        out = {k: read_field(groups, k, np.empty((len(slots), *shape), dtype))
               for k, (shape, dtype) in spec.observation_spec.items() if k not in cameras}
        if self.layout.features:
            groups = group_by_chunk(self.features, slots, size)
            out.update({name: read_field(groups, name, np.empty((len(slots), *shape), dtype))
                        for name, shape, dtype in self.layout.features})
        return out
