"""What a replay storage reports: the outcome of one append, and its bytes on disk."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppendResult:
    """What one `append` did; `watermark` is the actor's durable watermark afterwards."""

    appended: int
    duplicates: int
    invalid: int
    watermark: int
    # the invalid transitions' problems (distinct, first first), for the log
    first_error: str | None = None
    skipped: int = 0  # left out by the `keep` mask


@dataclass(frozen=True)
class DiskUsage:
    """Bytes on disk: observation slots, derived features, and everything else (rows, commit log,
    storage.json)."""

    frames_and_state: int
    features: int
    metadata: int

    @property
    def total(self) -> int:
        return self.frames_and_state + self.features + self.metadata
