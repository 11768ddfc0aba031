"""The spool's segment files: append-only records of encoded transitions, in sequence order.

A record is a header (sequence u64, payload length u32, crc32(payload) u32, flags u8) followed by
the encoded transition, resent as is (never re-encoded). A segment file is named after its first
sequence (20 digits, `.seg`) and holds consecutive sequences; the `Spool` decides when one starts
and when one is deleted.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import zlib
from array import array
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("serl.transport.spool")
HEADER = struct.Struct("<QIIB")  # sequence, payload length, crc32(payload), flags
FLAG_INTERVENED = 1


class Segment:
    """One segment file: records first .. first + len(offsets) - 1, each at its offset."""

    def __init__(self, path: Path, first: int, fd: int):
        self.path, self.first, self.fd = path, first, fd
        self.offsets, self.lengths = array("Q"), array("I")
        self.nbytes = 0

    @property
    def end(self) -> int:
        return self.first + len(self.offsets)

    @classmethod
    def create(cls, folder: Path, first: int) -> Segment:
        """A new, empty segment file for sequences from `first` on."""
        path = folder / f"{first:020d}.seg"
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        return cls(path, first, os.open(path, flags, 0o644))

    @classmethod
    def scan(cls, path: Path) -> tuple[Segment, bool]:
        """Index a segment's intact records; cut a torn tail. Returns (segment, whether it was
        intact)."""
        # O_APPEND: appends land at the end whatever the file offset
        segment = cls(path, int(path.stem), os.open(path, os.O_RDWR | os.O_APPEND))
        data, pos = path.read_bytes(), 0
        while pos + HEADER.size <= len(data):
            sequence, length, crc, _ = HEADER.unpack_from(data, pos)
            body = pos + HEADER.size
            if (
                sequence != segment.end
                or body + length > len(data)
                or zlib.crc32(data[body : body + length]) != crc
            ):
                break
            segment.offsets.append(pos)
            segment.lengths.append(length)
            pos = body + length
        segment.nbytes = pos
        if pos < len(data):
            log.warning("spool: cutting a torn record at byte %d of %s (%d bytes)", pos, path.name,
                        len(data) - pos)
            os.ftruncate(segment.fd, pos)
        return segment, pos == len(data)

    def append(self, sequence: int, record: bytes, crc: int, flags: int) -> None:
        """Write one record at the end (sequence must be `end`); an OSError (disk full) leaves the
        file as it was."""
        data = HEADER.pack(sequence, len(record), crc, flags) + record
        try:
            _write_all(self.fd, data)
        except OSError:
            os.ftruncate(self.fd, self.nbytes)
            raise
        self.offsets.append(self.nbytes)
        self.lengths.append(len(record))
        self.nbytes += len(data)

    def read(self, k: int) -> tuple[bytes, int]:
        """(record, flags) of this segment's k-th record."""
        data = os.pread(self.fd, HEADER.size + self.lengths[k], self.offsets[k])
        return data[HEADER.size :], data[HEADER.size - 1]


def records(segments: list[Segment], start: int, end: int) -> Iterator[tuple[int, bytes, int]]:
    """(sequence, record, flags) for stored sequences in [start, end), across `segments`
    (in order)."""
    i = max(0, bisect.bisect_right([s.first for s in segments], start) - 1)
    for segment in segments[i:]:
        for k in range(max(0, start - segment.first), len(segment.offsets)):
            if segment.first + k >= end:
                return
            record, flags = segment.read(k)
            yield segment.first + k, record, flags


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
