"""The actor's spool: every transition it produced and the learner has not acknowledged, on disk, in
wire form.

Layout of a spool folder:
    segments/<first sequence, 20 digits>.seg   append-only records (see `spool_segments`)
    acked        the highest sequence the learner acknowledged (text; rewritten durably on each
                 acknowledgement)
    produced.log the untrimmed audit log (see `produced_log`)
    lock         held while open: one actor per spool

Durability: `add` returns after write(2) of the record and of produced.log, so a killed process
(SIGKILL, crash) loses nothing: the data is in the OS. Records reach the disk itself at `sync`,
which the actor's I/O thread calls every `fsync_interval` seconds and `flush`/`close` call too: a
power cut can lose the last ~fsync_interval seconds (and, if the learner already stored them, the
restarted actor's next sequences are then dropped as duplicates). On open a torn last record is cut,
and sequences continue after the highest of: the last record, produced.log and the acknowledged
watermark, so they never go backwards.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from serl.durable import fsync_directory, lock_folder, write_text
from serl.transport.produced_log import ProducedLog
from serl.transport.spool_segments import FLAG_INTERVENED, Segment, records

log = logging.getLogger("serl.transport.spool")


class Spool:
    """Durable, sequence-numbered storage of encoded transitions until the learner acknowledges
    them. Thread-safe: the actor thread adds while the I/O thread reads, acknowledges and syncs."""

    def __init__(self, directory: str | Path, capacity_bytes: int = 8 << 30,
                 segment_bytes: int = 32 << 20, fsync_interval: float = 1.0):
        self.directory = Path(directory)
        (self.directory / "segments").mkdir(parents=True, exist_ok=True)
        self.capacity_bytes, self.segment_bytes = capacity_bytes, segment_bytes
        self.fsync_interval = fsync_interval
        self._cond = threading.Condition()
        self._ack_lock = threading.Lock()
        self._lock_fd = lock_folder(self.directory, "process (a spool has one actor)")
        self._segments: list[Segment] = []
        self._dirty = False  # segment files created or deleted since the last directory fsync
        self._closed = False
        self.produced = ProducedLog(self.directory / "produced.log")
        self._acked = self._read_acked()
        self._open_segments()
        self._next = max(self._spool_end(), self.produced.last + 1, self._acked + 1)
        self._trim(self._acked)

    # ---------- recovery ----------
    def _read_acked(self) -> int:
        try:
            return int((self.directory / "acked").read_text())
        except (FileNotFoundError, ValueError):
            return -1

    def _open_segments(self) -> None:
        paths = sorted((self.directory / "segments").glob("*.seg"))
        for i, path in enumerate(paths):
            segment, intact = Segment.scan(path)
            self._segments.append(segment)
            if not intact:
                # only after a power cut: an unsynced segment lost its tail
                for later in paths[i + 1:]:
                    log.warning("spool: dropping %s after the damaged %s", later.name, path.name)
                    later.unlink()
                break
        missing = [s for s in self._segments if s.end - 1 > self.produced.last]
        # killed between the spool write and produced.log's, or a power cut: the spool has them
        if missing:
            first = max(self.produced.last + 1, missing[0].first)
            # a power cut lost produced.log lines of since-trimmed records
            if first > self.produced.last + 1:
                self.produced.record_range(self.produced.last + 1, first - 1, -1)
            self.produced.record_range(first, missing[-1].end - 1,
                                       self._interventions(first, missing[-1].end))

    def _interventions(self, start: int, end: int) -> int:
        return sum(bool(flags & FLAG_INTERVENED) for _, _, flags in self._records(start, end))

    def _spool_end(self) -> int:
        return self._segments[-1].end if self._segments else 0

    # ---------- writing ----------
    def add(self, record: bytes, intervened: bool = False, sequence: int | None = None) -> int:
        """Append one encoded transition; returns its sequence. Durable against a process crash on
        return. Never refuses for lack of room (see `full`); an OSError (disk full) leaves the spool
        as it was. With `sequence` (a record that refers to its predecessor), a ValueError and
        nothing written if that is not the next sequence."""
        crc, flags = zlib.crc32(record), FLAG_INTERVENED if intervened else 0  # outside the lock
        with self._cond:
            self._check_open()
            if sequence is not None and sequence != self._next:
                raise ValueError(f"spool: record for sequence {sequence}, next is {self._next}")
            sequence = self._next
            self._writable(sequence).append(sequence, record, crc, flags)
            self.produced.record(sequence, intervened)
            self._next = sequence + 1
            return sequence

    def _writable(self, sequence: int) -> Segment:
        last = self._segments[-1] if self._segments else None
        if last is not None and last.end == sequence and last.nbytes < self.segment_bytes:
            return last
        segment = Segment.create(self.directory / "segments", sequence)
        self._segments.append(segment)
        self._dirty = True
        return segment

    # ---------- reading ----------
    def read(self, start: int, max_items: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Up to `max_items` consecutive (sequence, record) from `start` (at least one if any,
        however large), stopping before `max_bytes` in total."""
        out, total = [], 0
        with self._cond:
            self._check_open()
            for sequence, record, _ in self._records(max(start, self._acked + 1), self._next):
                if len(out) >= max_items or (out and total + len(record) > max_bytes):
                    break
                out.append((sequence, record))
                total += len(record)
        return out

    def _records(self, start: int, end: int) -> Iterator[tuple[int, bytes, int]]:
        """(sequence, record, flags) for stored sequences in [start, end); call under the lock."""
        return records(self._segments, start, end)

    def unacked(self) -> Iterator[tuple[int, bytes]]:
        """Every (sequence, record) above the acknowledged watermark, in order (read in chunks)."""
        start = self._acked + 1
        while chunk := self.read(start, 256, 64 << 20):
            yield from chunk
            start = chunk[-1][0] + 1

    # ---------- acknowledgements ----------
    def acknowledge(self, sequence: int) -> None:
        """Everything <= `sequence` is durable on the learner: persist the watermark, trim, wake
        `wait_acked`. Lower or repeated values are no-ops; a sequence not yet produced is a
        ValueError."""
        with self._ack_lock:  # one acknowledger at a time, so the file never goes back
            with self._cond:
                self._check_open()
                if sequence >= self._next:
                    raise ValueError(f"acknowledgement of {sequence}, but only sequences < "
                                     f"{self._next} exist")
                if sequence <= self._acked:
                    return
            # Durable before anything is trimmed; outside `_cond`, so `add` never waits on the
            # fsyncs.
            write_text(self.directory / "acked", str(sequence))
            with self._cond:
                if self._closed:
                    return
                self._acked = sequence
                self._trim(sequence)
                self._cond.notify_all()

    def _trim(self, watermark: int) -> None:
        keep = []
        for i, segment in enumerate(self._segments):
            if segment.end - 1 <= watermark and i < len(self._segments) - 1:
                os.close(segment.fd)
                segment.path.unlink(missing_ok=True)
                self._dirty = True
            else:
                keep.append(segment)
        self._segments = keep

    def wait_acked(self, sequence: int, timeout: float | None) -> bool:
        """Wait until every sequence <= `sequence` is acknowledged; False if `timeout`
        passes first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._acked >= sequence, timeout)

    # ---------- state ----------
    @property
    def next_sequence(self) -> int:
        """The sequence the next `add` gets."""
        return self._next

    @property
    def acked(self) -> int:
        """The acknowledged watermark (-1: nothing yet)."""
        return self._acked

    @property
    def nbytes(self) -> int:
        """Bytes held by segment files (acknowledged records linger until their whole segment is
        trimmed)."""
        return sum(s.nbytes for s in self._segments)

    @property
    def full(self) -> bool:
        """True once the spool holds `capacity_bytes`: finish the episode, start no new one until
        acks free room."""
        return self.nbytes >= self.capacity_bytes

    def sync(self, break_line: bool = False) -> None:
        """fsync records, produced.log and the folder to the disk; `break_line` starts a new
        produced.log line."""
        with self._cond:
            if self._closed:
                return
            fds = [os.dup(s.fd) for s in self._segments]
            dirty, self._dirty = self._dirty, False
            if break_line:
                self.produced.break_line()
        for fd in fds:  # outside the lock: adds go on while the disk catches up
            os.fsync(fd)
            os.close(fd)
        self.produced.sync()
        if dirty:
            for folder in (self.directory / "segments", self.directory):
                fsync_directory(folder)

    def close(self) -> None:
        """Sync and close; re-open the folder to continue (unacknowledged records are
        sent again)."""
        self.sync()
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for segment in self._segments:
                os.close(segment.fd)
            self.produced.close()
            os.close(self._lock_fd)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"spool {self.directory} is closed")

