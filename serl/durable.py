"""The few file-system moves durability rests on, shared by the replay storage, the actor's spool
and every file written atomically (demos, labels, device streams, counters, progress, checkpoints'
side files).

An atomic write goes to a temporary name, is fsynced, renamed over the final name, and the folder is
fsynced: after a crash the final name holds the old content or the new, never a torn mix, and a
completed write survives a power cut. Every write that a promise rests on ("never reused across a
crash") goes through here.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
from pathlib import Path

import numpy as np


def fsync_directory(path: Path) -> None:
    """Make a created, renamed or deleted directory entry durable."""
    fsync_file(path)


def fsync_file(path: Path) -> None:
    """Make the content of `path` durable (a file another library wrote without fsync)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_folder(directory: Path, what: str) -> int:
    """Hold an exclusive lock on `directory` while open (two writers would corrupt each other's
    records); returns the lock's file descriptor, or raises naming `what` already holds it."""
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"{directory} is already open in another {what}") from None
    return fd


def write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write `data` as `path` atomically and durably (temporary name, fsync, rename, fsync of the
    folder). Ctrl+C or a crash never leaves a half-written file under the final name. `durable`
    False skips the two fsyncs, for a file rewritten often whose loss in a power cut costs only
    redone work (the learner's update count between checkpoints, the spool's acknowledgement):
    still atomic, and it survives a process crash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_directory(path.parent)
    return path


def write_text(path: str | Path, text: str, durable: bool = True) -> Path:
    """`write_bytes` of UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"), durable)


def write_json(path: str | Path, value, indent: int | None = None, durable: bool = True) -> Path:
    """`write_bytes` of `value` as JSON (a trailing newline when indented)."""
    text = json.dumps(value, indent=indent) + ("\n" if indent is not None else "")
    return write_text(path, text, durable)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """`write_bytes` of `arrays` as an `.npz` (numpy only, never pickle)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())
