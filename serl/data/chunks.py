"""Fixed-size chunk files of one record dtype: written with pwrite + fdatasync, read through
read-only memmaps.

Record i lives in file `{i // chunk_size:08d}.bin` at position `i % chunk_size`. A chunk file is
created at its full size (sparse: only written records take disk blocks), so its memmap never has to
grow. `maps` is replaced, never mutated, whenever a chunk is added or deleted: a reader holding an
older dict keeps valid mappings (an unlinked file stays readable while mapped) without taking any
lock.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from serl.durable import fsync_directory


class ChunkFiles:
    """One folder of chunk files holding records of `dtype` (transition rows, observation slots or
    features)."""

    def __init__(self, directory: Path, dtype: np.dtype, chunk_size: int) -> None:
        self.directory = Path(directory)
        self.dtype = np.dtype(dtype)
        self.chunk_size = chunk_size
        self.maps: dict[int, np.ndarray] = {}
        self._fds: dict[int, int] = {}  # chunks written since the last sync
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_size * self.dtype.itemsize

    def open(self, count: int) -> None:
        """Map the files holding committed records [0, count); delete files beyond them, trim
        appended garbage."""
        last = (count - 1) // self.chunk_size  # -1 when empty
        maps = {}
        for path in sorted(self.directory.glob("*.bin")):
            chunk = int(path.stem)
            if chunk > last:
                path.unlink()  # created for data that was never committed
                continue
            size = path.stat().st_size
            if size < self.chunk_bytes:
                raise RuntimeError(f"{path}: {size} bytes, expected {self.chunk_bytes}; committed "
                                   "data is missing")
            if size > self.chunk_bytes:
                os.truncate(path, self.chunk_bytes)  # garbage appended after a crash
            maps[chunk] = self._map(path)
        self.maps = maps

    def write(self, start: int, records: np.ndarray) -> None:
        """Write records at positions start, start+1, ... (not yet durable: call `sync`)."""
        records = np.ascontiguousarray(records, dtype=self.dtype)
        done = 0
        while done < len(records):
            chunk, local = divmod(start + done, self.chunk_size)
            n = min(len(records) - done, self.chunk_size - local)
            _pwrite_all(self._fd(chunk), memoryview(records[done:done + n]).cast("B"),
                        local * self.dtype.itemsize)
            done += n

    def sync(self) -> None:
        """Make every write since the last sync durable; keep only the newest chunk's file open."""
        newest = max(self._fds, default=None)
        for chunk, fd in list(self._fds.items()):
            os.fdatasync(fd)
            if chunk != newest:
                os.close(self._fds.pop(chunk))

    def write_durably(self, start: int, records: np.ndarray) -> None:
        """`write`, then `sync`."""
        self.write(start, records)
        self.sync()

    def delete_below(self, chunk: int) -> None:
        """Delete every chunk file with index < chunk."""
        doomed = [c for c in self.maps if c < chunk]
        if not doomed:
            return
        self.maps = {c: m for c, m in self.maps.items() if c >= chunk}
        for c in doomed:
            if c in self._fds:
                os.close(self._fds.pop(c))
            (self.directory / f"{c:08d}.bin").unlink(missing_ok=True)
        fsync_directory(self.directory)

    def nbytes(self) -> int:
        """Disk blocks actually allocated to the chunk files."""
        return sum(p.stat().st_blocks * 512 for p in self.directory.glob("*.bin"))

    def close(self) -> None:
        """Close open file descriptors (mappings stay valid for readers still holding them)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _fd(self, chunk: int) -> int:
        if chunk in self._fds:
            return self._fds[chunk]
        path = self.directory / f"{chunk:08d}.bin"
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # new, or left short by a failed ftruncate (disk full)
            if os.fstat(fd).st_size < self.chunk_bytes:
                os.ftruncate(fd, self.chunk_bytes)
            if created:
                fsync_directory(self.directory)
        except OSError:
            # nothing committed lives in a file this short: the next try starts it again
            os.close(fd)
            raise
        self._fds[chunk] = fd
        if chunk not in self.maps:
            self.maps = {**self.maps, chunk: self._map(path)}
        return fd

    def _map(self, path: Path) -> np.ndarray:
        return np.asarray(np.memmap(path, dtype=self.dtype, mode="r", shape=(self.chunk_size,)))


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def group_by_chunk(maps: dict[int, np.ndarray], index: np.ndarray, chunk_size: int) -> list[tuple]:
    """[(chunk map, positions in `index`, positions in the chunk)] so each chunk is indexed once per
    field."""
    chunks, local = np.divmod(np.asarray(index, dtype=np.int64), chunk_size)
    order = np.argsort(chunks, kind="stable")
    bounds = np.flatnonzero(np.diff(chunks[order])) + 1
    groups = []
    for sel in np.split(order, bounds) if len(order) else []:
        chunk = int(chunks[sel[0]])
        if chunk not in maps:
            raise IndexError(f"record {int(index[sel[0]])} is in chunk {chunk}, which is no longer "
                             "stored")
        groups.append((maps[chunk], sel, local[sel]))
    return groups


def read_field(groups: list[tuple], field: str | None, out: np.ndarray) -> np.ndarray:
    """Fill `out` with one field (or whole records when `field` is None) of the grouped records."""
    for chunk_map, sel, local in groups:
        source = chunk_map if field is None else chunk_map[field]
        out[sel] = source[local]
    return out
