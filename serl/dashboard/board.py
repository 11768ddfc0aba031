"""`Board`: the newest dashboard state, written by the actor's thread and read by the server's.

The writer never waits on a reader: a write replaces whole sections (copy on write) under a lock
held for a few assignments, and readers take the reference and serialise outside it. A reader that
falls behind (a slow browser) sees the newest state when it next asks and skips the ones between.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Frame:
    """One camera's newest frame as the policy sees it."""

    seq: int  # grows by one per published frame of this camera
    jpeg: bytes
    captured: float  # wall-clock time (time.time()) the camera captured it


class Board:
    def __init__(self):
        self._cond = threading.Condition()
        self._version = 0
        self._state: dict[str, Any] = {}
        self._frames: dict[str, Frame] = {}

    def update(self, frames: dict[str, tuple[bytes, float]] | None = None, **sections) -> None:
        """Replace the named sections (JSON-able values) and each camera's frame
        (camera -> (JPEG bytes, capture wall time)); wakes every waiting reader."""
        with self._cond:
            if frames:
                new = dict(self._frames)
                for key, (jpeg, captured) in frames.items():
                    old = new.get(key)
                    new[key] = Frame(old.seq + 1 if old else 0, jpeg, captured)
                self._frames = new
            self._state = {**self._state, **sections}
            self._version += 1
            self._cond.notify_all()

    def mirror(self, state: dict[str, Any], frames: dict[str, Frame]) -> None:
        """Take another board's whole state and the frames it replaced, as they are (the
        dashboard's server process mirrors the actor's board this way)."""
        with self._cond:
            if frames:
                self._frames = {**self._frames, **frames}
            self._state = state
            self._version += 1
            self._cond.notify_all()

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """(version, state): the state with each camera's frame seq and capture time (no bytes)."""
        version, state, _ = self.snapshot_with_frames()
        return version, state

    def snapshot_with_frames(self) -> tuple[int, dict[str, Any], dict[str, Frame]]:
        """The snapshot and the frames it describes (taken together: the frames are that
        state's, never a later step's)."""
        with self._cond:
            version, state, frames = self._version, self._state, self._frames
        return version, {**state, "frames": {k: {"seq": f.seq, "captured": f.captured}
                                             for k, f in frames.items()}}, frames

    def wait_newer(self, version: int, timeout: float):
        """`snapshot_with_frames()` once it is newer than `version`, or None after `timeout`
        seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._version > version, timeout):
                return None
        return self.snapshot_with_frames()

    def frame(self, key: str) -> Frame | None:
        return self._frames.get(key)

    def wake_all(self) -> None:
        """Wake every waiting reader (at shutdown)."""
        with self._cond:
            self._version += 1
            self._cond.notify_all()
