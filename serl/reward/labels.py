"""Success label files: frames (the configured cameras + the flattened state) with a success label
and the episode each frame came from, one `.npz` per recording session. A labels folder accumulates
them (sim-labelled sessions, operator sessions, hard negatives from runs); training reads every file
in it. Episode ids are per file; loading makes them unique across files so the train/validation
split by episode stays honest.

Layout: `images.<camera>` uint8 (N, H, W, 3), `state` float32 (N, D), `labels` bool (N,), `episode`
int64 (N,), `meta` a JSON string (source, cameras, format)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serl.reward.files import read_npz, unique_name, write_npz

IMAGES = "images."
FORMAT = 1


@dataclass
class LabelSet:
    images: dict[str, np.ndarray]  # camera -> uint8 (N, H, W, 3)
    state: np.ndarray  # float32 (N, D): the flattened state the policy sees
    labels: np.ndarray  # bool (N,): True = success
    episodes: np.ndarray  # int64 (N,): which episode each frame came from

    def __post_init__(self) -> None:
        n = len(self.labels)
        lengths = {k: len(v) for k, v in self.images.items()} | {"state": len(self.state),
                                                                  "episode": len(self.episodes)}
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(f"label set fields disagree in length with its {n} labels: {bad}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def positives(self) -> int:
        return int(np.sum(self.labels))

    def take(self, rows: np.ndarray) -> LabelSet:
        return LabelSet(
            {k: v[rows] for k, v in self.images.items()},
            self.state[rows],
            self.labels[rows],
            self.episodes[rows],
        )


def from_frames(
    frames: list[dict], labels: list[bool], episodes: list[int], cameras: tuple[str, ...]
) -> LabelSet:
    """A label set from flattened observations (`{"state": ..., camera: image}`) and their
    labels."""
    if not frames:
        return empty(cameras)
    return LabelSet(
        {c: np.stack([f[c] for f in frames]).astype(np.uint8) for c in cameras},
        np.stack([np.asarray(f["state"], np.float32) for f in frames]),
        np.asarray(labels, bool),
        np.asarray(episodes, np.int64),
    )


def empty(cameras: tuple[str, ...], image_shape=(0, 0, 3), state_dim: int = 0) -> LabelSet:
    return LabelSet(
        {c: np.zeros((0, *image_shape), np.uint8) for c in cameras},
        np.zeros((0, state_dim), np.float32),
        np.zeros(0, bool),
        np.zeros(0, np.int64),
    )


def concatenate(sets: list[LabelSet]) -> LabelSet:
    """Sets joined; episode ids are renumbered so that equal ids in different sets stay different
    episodes."""
    sets = [s for s in sets if len(s)]
    if not sets:
        raise ValueError("no labelled frames to join")
    cameras = set(sets[0].images)
    for s in sets[1:]:
        if set(s.images) != cameras:
            raise ValueError(
                f"label sets have different cameras: {sorted(cameras)} vs {sorted(s.images)}"
            )
    episodes, offset = [], 0
    for s in sets:
        _, dense = np.unique(s.episodes, return_inverse=True)
        episodes.append(dense.reshape(-1) + offset)
        offset += int(dense.max()) + 1
    return LabelSet(
        {c: np.concatenate([s.images[c] for s in sets]) for c in sorted(cameras)},
        np.concatenate([s.state for s in sets]),
        np.concatenate([s.labels for s in sets]),
        np.concatenate(episodes).astype(np.int64),
    )


def save_labels(folder: str | Path, labels: LabelSet, source: str) -> Path:
    """Write a label set as a new file in `folder` (atomically); returns its path."""
    arrays = {IMAGES + k: v for k, v in labels.images.items()}
    arrays.update(
        state=labels.state,
        labels=labels.labels,
        episode=labels.episodes,
        meta=np.array(
            json.dumps({"format": FORMAT, "source": source, "cameras": sorted(labels.images)})
        ),
    )
    return write_npz(Path(folder) / unique_name(f"labels_{source}"), arrays)


def load_label_file(path: str | Path) -> LabelSet:
    """One label file; ValueError naming the file when it is unreadable or not a label file."""
    path = Path(path)
    arrays = read_npz(path)
    missing = {"state", "labels", "episode", "meta"} - set(arrays)
    if missing:
        raise ValueError(f"{path.name}: not a label file (missing {sorted(missing)})")
    try:
        return LabelSet(
            {k[len(IMAGES) :]: v for k, v in arrays.items() if k.startswith(IMAGES)},
            arrays["state"].astype(np.float32),
            arrays["labels"].astype(bool),
            arrays["episode"].astype(np.int64),
        )
    except ValueError as err:
        raise ValueError(f"{path.name}: {err}") from None


def load_label_folder(folder: str | Path) -> tuple[dict[Path, LabelSet], list[str]]:
    """Every readable label file in `folder` by path, and one message per file skipped (unreadable
    or foreign). Joining them (`concatenate`) is the caller's, after checking them against its
    configuration."""
    paths = sorted(Path(folder).glob("*.npz"))
    if not paths:
        raise FileNotFoundError(
            f"no label files (*.npz) in {folder}: record some with `serl record-labels`"
        )
    sets, problems = {}, []
    for path in paths:
        try:
            sets[path] = load_label_file(path)
        except ValueError as err:
            problems.append(str(err))
    if not sets:
        raise ValueError(f"no readable label file in {folder}: " + "; ".join(problems))
    return sets, problems
