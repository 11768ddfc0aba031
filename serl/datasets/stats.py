"""Per-feature statistics as LeRobot keeps them (`lerobot/datasets/compute_stats.py`): min, max,
mean, std and count, per entry of a vector, per channel of a camera (scaled to [0, 1], shape
(3, 1, 1)). Streamed: a vector's chunks are reduced as they pass and merged (Chan et al.'s
pairwise update), a camera's values counted in a histogram, so a 200k-frame export holds only the
running figures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

# frames of a camera counted at a time (bounds the copy of one channel's values)
IMAGE_BATCH = 32


class RunningStats:
    """The running statistics of one vector (or scalar) feature, per entry."""

    def __init__(self):
        self.count = self.frames = 0
        self.min = self.max = self.mean = self.m2 = None

    def add(self, values: np.ndarray) -> None:
        """Add frames (leading axis) of this feature."""
        x = np.asarray(values).reshape(len(values), -1).astype(np.float64)
        if len(x) == 0:
            return
        part = RunningStats()
        part.count = part.frames = len(x)
        part.min, part.max, part.mean = x.min(axis=0), x.max(axis=0), x.mean(axis=0)
        part.m2 = ((x - part.mean) ** 2).sum(axis=0)
        self.merge(part)

    def merge(self, other: RunningStats) -> None:
        """Fold another's statistics (the same feature over other frames) into these."""
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.frames = other.count, other.frames
            self.min, self.max = other.min.copy(), other.max.copy()
            self.mean, self.m2 = other.mean.copy(), other.m2.copy()
            return
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / n)
        self.m2 = self.m2 + other.m2 + delta ** 2 * (self.count * other.count / n)
        self.min, self.max = np.minimum(self.min, other.min), np.maximum(self.max, other.max)
        self.count = self.frames = n

    def result(self) -> dict[str, np.ndarray]:
        """{min, max, mean, std, count} as LeRobot writes them."""
        if self.count == 0:
            raise ValueError("no frames were added")
        std = np.sqrt(np.maximum(self.m2 / self.count, 0.0))
        return {"min": self.min, "max": self.max, "mean": self.mean, "std": std,
                "count": np.array([self.frames], np.int64)}


class ImageStats:
    """The statistics of a camera, per channel, from a histogram of its uint8 values: exact, and
    a few kilobytes however many frames pass."""

    def __init__(self):
        self.frames = 0
        self.histogram: np.ndarray | None = None  # (channels, 256) counts

    def add(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ValueError(f"camera frames must be uint8, got {frames.dtype}")
        channels = frames.shape[-1]
        if self.histogram is None:
            self.histogram = np.zeros((channels, 256), np.int64)
        for start in range(0, len(frames), IMAGE_BATCH):
            batch = frames[start:start + IMAGE_BATCH]
            for c in range(channels):
                self.histogram[c] += np.bincount(batch[..., c].ravel(), minlength=256)
        self.frames += len(frames)

    def merge(self, other: ImageStats) -> None:
        if other.histogram is None:
            return
        self.histogram = other.histogram.copy() if self.histogram is None else (
            self.histogram + other.histogram)
        self.frames += other.frames

    def result(self) -> dict[str, np.ndarray]:
        """{min, max, mean, std, count}: (channels, 1, 1) in [0, 1], count in frames."""
        if self.histogram is None:
            raise ValueError("no frames were added")
        levels = np.arange(256) / 255.0
        n = self.histogram.sum(axis=1)
        mean = self.histogram @ levels / n
        var = self.histogram @ levels**2 / n - mean**2
        seen = self.histogram > 0
        low = np.array([levels[row].min() for row in seen])
        high = np.array([levels[row].max() for row in seen])
        out = {"min": low, "max": high, "mean": mean, "std": np.sqrt(np.maximum(var, 0.0))}
        return {**{k: v.reshape(-1, 1, 1) for k, v in out.items()},
                "count": np.array([self.frames], np.int64)}


class FeatureStats:
    """RunningStats of every feature of a dataset (or an episode), by name."""

    def __init__(self, images: Iterable[str] = ()):
        self.images = set(images)
        self.stats: dict[str, RunningStats | ImageStats] = {}

    def add(self, columns: Mapping[str, np.ndarray]) -> None:
        """Add a chunk of frames: {feature: values with a leading frame axis}."""
        for key, values in columns.items():
            if key not in self.stats:
                self.stats[key] = ImageStats() if key in self.images else RunningStats()
            self.stats[key].add(values)

    def merge(self, other: FeatureStats) -> None:
        for key, stats in other.stats.items():
            self.stats.setdefault(key, type(stats)()).merge(stats)

    def result(self) -> dict[str, dict[str, np.ndarray]]:
        return {key: stats.result() for key, stats in self.stats.items()}
