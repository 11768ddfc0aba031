"""A replay storage folder's record files, handled together: the row, slot and optional feature
chunk files (`chunks.py`), which slot chunks the stored rows still point into, and the checks,
writes and garbage collection over all of them. `ReplayStorage` decides what to write and when it is
committed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from serl.data.chunks import ChunkFiles
from serl.data.layout import StorageLayout


class StorageFiles:
    """The rows/, slots/ and features/ chunk files of one folder, with `min_obs_slot`: the lowest
    observation slot each stored row chunk points at (what keeps slot chunks alive)."""

    def __init__(self, directory: Path, layout: StorageLayout) -> None:
        self.chunk_size = cs = layout.chunk_size
        self.rows = ChunkFiles(directory / "rows", layout.row_dtype, cs)
        self.slots = ChunkFiles(directory / "slots", layout.slot_dtype, cs)
        has_features = bool(layout.features)
        self.features = ChunkFiles(directory / "features", layout.feature_dtype,
                                   cs) if has_features else None
        self.row_dtype = layout.row_dtype
        self.min_obs_slot: dict[int, int] = {}
        self._io = ThreadPoolExecutor(max_workers=3, thread_name_prefix="replay-io")

    def open(self, n_slots: int, n_rows: int) -> np.ndarray:
        """Map the committed chunks, check none is missing; returns every stored row (in order)."""
        self.rows.open(n_rows)
        self.slots.open(n_slots)
        if self.features is not None:
            self.features.open(n_slots)
        self.min_obs_slot = {c: int(self._chunk_rows(c, n_rows)["obs_slot"].min())
                             for c in self.rows.maps}
        self._check_complete(n_slots, n_rows)
        parts = [self._chunk_rows(c, n_rows) for c in sorted(self.rows.maps)]
        return np.concatenate(parts) if parts else np.empty(0, self.row_dtype)

    def _chunk_rows(self, chunk: int, n_rows: int) -> np.ndarray:
        """The committed rows of one stored row chunk."""
        cs = self.chunk_size
        return self.rows.maps[chunk][: max(0, min(cs, n_rows - chunk * cs))]

    def _check_complete(self, n_slots: int, n_rows: int) -> None:
        """Every chunk file a stored row needs is there (else the folder was damaged
        from outside)."""
        cs = self.chunk_size
        floor = min(self.min_obs_slot.values(), default=n_slots) // cs
        needs = [(self.rows, min(self.rows.maps, default=0), n_rows), (self.slots, floor, n_slots)]
        needs += [(self.features, floor, n_slots)] if self.features else []
        for files, first, count in needs:
            missing = sorted(set(range(first, (count - 1) // cs + 1)) - set(files.maps))
            if missing:
                raise RuntimeError(f"{files.directory}: chunk files {missing} are missing")

    def write_durably(self, n_slots: int, n_rows: int, slots: np.ndarray, rows: np.ndarray,
                      features: np.ndarray | None) -> None:
        """Write new slots, rows and features past the committed counts and fsync them."""
        files = [(self.slots, n_slots, slots), (self.rows, n_rows, rows)]
        if features is not None:
            files.append((self.features, n_slots, features))
        # Each file written and fsynced on its own thread: the fsyncs overlap (about 2x the durable
        # rate).
        done, _ = wait([self._io.submit(f.write_durably, start, recs) for f, start, recs in files])
        for future in done:
            # All finished first: a failure never leaves a write running into the next append.
            future.result()

    def note_rows(self, first_row: int, rows: np.ndarray) -> None:
        """Record the lowest observation slot of each row chunk that committed `rows` (from
        `first_row` on) went into."""
        chunks = (first_row + np.arange(len(rows))) // self.chunk_size
        for c in np.unique(chunks):
            low = int(rows["obs_slot"][chunks == c].min())
            self.min_obs_slot[int(c)] = min(low, self.min_obs_slot.get(int(c), low))

    def collect_garbage(self, first_kept_row: int, n_slots: int) -> int:
        """Delete row chunks wholly below `first_kept_row`, then slot (and feature) chunks no stored
        row points into; returns the first slot still stored."""
        cs = self.chunk_size
        self.rows.delete_below(first_kept_row // cs)
        self.min_obs_slot = {c: v for c, v in self.min_obs_slot.items() if c in self.rows.maps}
        floor = min(self.min_obs_slot.values(), default=n_slots) // cs
        self.slots.delete_below(floor)
        if self.features is not None:
            self.features.delete_below(floor)
        return floor * cs

    def read_slot(self, slot: int) -> bytes | None:
        """The bytes of one stored slot record, or None if its chunk is gone."""
        chunk, local = divmod(slot, self.chunk_size)
        chunk_map = self.slots.maps.get(chunk)
        return None if chunk_map is None else chunk_map[local].tobytes()

    def close(self) -> None:
        """Close every file (mappings stay valid for readers still holding them)."""
        for files in (self.rows, self.slots, self.features):
            if files is not None:
                files.close()
        self._io.shutdown()
