"""The few file-system moves durability rests on, shared by the replay storage, the actor's spool and every
atomically written file (demos, labels, device streams)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np


def fsync_directory(path: Path) -> None:
    """Make a created, renamed or deleted directory entry durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_folder(directory: Path, what: str) -> int:
    """Hold an exclusive lock on `directory` while open (two writers would corrupt each other's records); returns
    the lock's file descriptor, or raises naming `what` already holds it."""
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"{directory} is already open in another {what}") from None
    return fd


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` as `path` (numpy only, never pickle) atomically: a temporary name, fsync, rename, fsync of the
    folder. Ctrl+C or a crash never leaves a half-written file under the final name (only a `*.tmp`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)
    return path
