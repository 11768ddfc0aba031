"""`produced.log`: the actor's untrimmed audit log of every transition sequence it produced.

Text, one fixed-width line per range of consecutive sequences: `first last count interventions`
(inclusive; count is last - first + 1; interventions is how many of them were intervention steps, -1
if unknown after a power cut). A line is rewritten in place (same length) after every transition, so
the log is current whenever `add` returns; a new line starts at each actor session and each flush.
Audits compare the learner's buffers against this file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HEADER = (b"# first_sequence last_sequence count interventions "
          b"(inclusive ranges; one line per session or flush)\n")
_LINE = "{:>20} {:>20} {:>20} {:>20}\n"
LINE_BYTES = len(_LINE.format(0, 0, 0, 0))


@dataclass(frozen=True)
class ProducedRange:
    """Sequences first..last (inclusive), `interventions` of them intervention steps
    (-1: unknown)."""

    first: int
    last: int
    count: int
    interventions: int


def read_produced_log(path: str | Path) -> list[ProducedRange]:
    """Every complete range in a produced.log, in file order (a torn last line is ignored)."""
    return _parse(Path(path).read_bytes())[0]


def produced_sequences(path: str | Path) -> set[int]:
    """Every sequence a produced.log records."""
    return {s for r in read_produced_log(path) for s in range(r.first, r.last + 1)}


def _parse(data: bytes) -> tuple[list[ProducedRange], int]:
    """(ranges, bytes of the valid prefix): parsing stops at the first line that is not a complete
    record."""
    ranges, pos = [], 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            break
        line = data[pos:end]
        if not line.startswith(b"#"):
            try:
                first, last, count, interventions = (int(x) for x in line.split())
            except ValueError:
                break
            if count != last - first + 1 or count < 1:
                break
            ranges.append(ProducedRange(first, last, count, interventions))
        pos = end + 1
    return ranges, pos


class ProducedLog:
    """Appends ranges to a produced.log; `record` extends the current line in place. Not thread-safe
    (the spool calls it under its lock)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        data = os.pread(self._fd, os.fstat(self._fd).st_size, 0)
        ranges, valid = _parse(data)
        if valid < len(data):
            os.ftruncate(self._fd, valid)  # a line torn by a power cut
        if valid == 0:
            os.pwrite(self._fd, HEADER, 0)
        self.last = max((r.last for r in ranges), default=-1)  # highest sequence recorded
        # offset of the line `record` rewrites; None: the next record starts one
        self._line_at: int | None = None
        self._first = self._interventions = 0

    def record(self, sequence: int, intervened: bool) -> None:
        """Record `sequence` (must be `last + 1`)."""
        if sequence != self.last + 1:
            raise ValueError(f"produced.log: sequence {sequence} after {self.last}")
        if self._line_at is None:
            self._line_at = os.lseek(self._fd, 0, os.SEEK_END)
            self._first, self._interventions = sequence, 0
        self._interventions += bool(intervened)
        self.last = sequence
        self._write(self._line_at, self._first, sequence, self._interventions)

    def record_range(self, first: int, last: int, interventions: int) -> None:
        """Record sequences first..last on a line of their own (recovery after a crash; -1:
        unknown)."""
        self.break_line()
        os.pwrite(self._fd, _LINE.format(first, last, last - first + 1, interventions).encode(),
                  os.lseek(self._fd, 0, os.SEEK_END))
        self.last = max(self.last, last)

    def break_line(self) -> None:
        """Make the next `record` start a new line."""
        self._line_at = None

    def _write(self, at: int, first: int, last: int, interventions: int) -> None:
        line = _LINE.format(first, last, last - first + 1, interventions).encode()
        if os.pwrite(self._fd, line, at) != len(line):
            raise OSError(f"{self.path}: short write")

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
