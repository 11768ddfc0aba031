"""Atomic npz files (numpy only, never pickle): written to a temporary name, fsynced, renamed, so
Ctrl+C or a crash never leaves a half-written file under a final name."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from serl.durable import write_npz  # noqa: F401  (re-exported: the label and positives files use it)


def unique_name(prefix: str, suffix: str = ".npz") -> str:
    """A file name that sorts by creation time and does not collide within a process or across
    processes."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{prefix}_{stamp}_{time.time_ns() % 10**9:09d}_{os.getpid()}{suffix}"


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an npz file; ValueError naming the file if it is unreadable (truncated, not a
    zip, pickled)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as err:  # zip, header and truncation errors come in many types
        raise ValueError(
            f"{path.name}: not a readable npz file ({type(err).__name__}: {err})"
        ) from None
