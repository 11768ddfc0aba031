"""The commit log: the single source of truth for what a replay storage holds.

Each append ends with one record (slot and transition counts after it, the actor id and its new
watermark, a CRC), fsynced after the data it covers. On open the last intact record defines the
storage; a torn tail (a partial or corrupt last record) is cut. Corruption followed by intact
records is not a torn write, so it is refused rather than silently dropping committed data.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from serl.durable import fsync_directory, write_bytes

_MAGIC = b"SRC1"
_HEADER = struct.Struct("<4sQQqH")  # magic, n_slots, n_rows, watermark, actor id length
_CRC = struct.Struct("<I")
COMPACT_AFTER_RECORDS = 10_000  # on open, longer logs are rewritten as one record per actor


@dataclass
class CommitState:
    """What the last intact record says, plus every actor's watermark in order of
    first appearance."""

    n_slots: int = 0
    n_rows: int = 0
    watermarks: dict[str, int] = field(default_factory=dict)
    records: int = 0


def encode_record(n_slots: int, n_rows: int, actor_id: str, watermark: int) -> bytes:
    """One commit record: header, actor id (utf-8), CRC32 of both."""
    actor = actor_id.encode()
    payload = _HEADER.pack(_MAGIC, n_slots, n_rows, watermark, len(actor)) + actor
    return payload + _CRC.pack(zlib.crc32(payload))


def decode_record(data: bytes, offset: int) -> tuple[int, int, str, int, int] | None:
    """(n_slots, n_rows, actor_id, watermark, next offset) of the record at `offset`, or None if
    partial/corrupt."""
    if offset + _HEADER.size > len(data):
        return None
    magic, n_slots, n_rows, watermark, n_actor = _HEADER.unpack_from(data, offset)
    end = offset + _HEADER.size + n_actor
    if magic != _MAGIC or end + _CRC.size > len(data):
        return None
    (crc,) = _CRC.unpack_from(data, end)
    if crc != zlib.crc32(data[offset:end]):
        return None
    try:
        actor = data[offset + _HEADER.size:end].decode()
    except UnicodeDecodeError:
        return None
    return n_slots, n_rows, actor, watermark, end + _CRC.size


class CommitLog:
    """Append-only, fsynced log of commit records (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._end = 0

    def open(self) -> CommitState:
        """Read the log, cut a torn tail, compact it if long, and open it for appending."""
        created = not self.path.exists()
        data = self.path.read_bytes() if not created else b""
        state, good_end = _replay(data)
        if good_end < len(data):
            _refuse_if_intact_records_follow(data, good_end, self.path)
        length = len(data)
        if state.records > COMPACT_AFTER_RECORDS:
            self._rewrite(state)
            good_end = length = self.path.stat().st_size
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if good_end < length:
            os.ftruncate(self._fd, good_end)  # cut the torn tail so new records follow intact ones
            os.fsync(self._fd)
        if created:
            fsync_directory(self.path.parent)
        self._end = good_end
        return state

    def append(self, n_slots: int, n_rows: int, actor_id: str, watermark: int) -> None:
        """Append one record and fsync it; when this returns, the record (and what it covers) is
        committed."""
        if self._fd is None:
            raise RuntimeError("commit log is not open")
        record = encode_record(n_slots, n_rows, actor_id, watermark)
        written = os.pwrite(self._fd, record, self._end)
        # e.g. a full disk: the partial record is overwritten by the next append
        if written != len(record):
            raise OSError(errno.ENOSPC,
                          f"{self.path}: short write of a commit record ({written} of "
                          f"{len(record)} "
                          "bytes); nothing committed")
        os.fdatasync(self._fd)
        self._end += len(record)

    def nbytes(self) -> int:
        """Size of the log on disk."""
        return self._end

    def close(self) -> None:
        """Close the file; records already appended stay committed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rewrite(self, state: CommitState) -> None:
        """Replace the log by one record per actor (in first-appearance order), atomically."""
        records = b"".join(encode_record(state.n_slots, state.n_rows, a, w) for a,
                           w in state.watermarks.items())
        write_bytes(self.path, records)


def _replay(data: bytes) -> tuple[CommitState, int]:
    """The state after the last intact record, and the offset just past it."""
    state, offset = CommitState(), 0
    while (record := decode_record(data, offset)) is not None:
        state.n_slots, state.n_rows, actor, state.watermarks[actor], offset = record
        state.records += 1
    return state, offset


def _refuse_if_intact_records_follow(data: bytes, bad: int, path: Path) -> None:
    start = bad + 1
    while (hit := data.find(_MAGIC, start)) >= 0:
        if decode_record(data, hit) is not None:
            raise RuntimeError(f"{path}: corrupt record at byte {bad} is followed by intact "
                               f"records at byte {hit}; "
                               "this is not a torn write, refusing to drop committed data")
        start = hit + 1
