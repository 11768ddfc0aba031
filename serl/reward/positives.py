"""Frames a classifier called success during a run, kept for review: one `.npz` per frame in
`runs/<name>/classifier_positives/`, with the classifier's version and probability and, in
simulation, the simulator's own success flag. `serl record-labels --from-run` shows them to the
operator; the false ones become hard negatives for the next training set. Reviewed frames move to
`reviewed/` so they are shown once."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serl.durable import fsync_directory
from serl.reward.files import read_npz, unique_name, write_npz

FOLDER = "classifier_positives"
REVIEWED = "reviewed"
UNKNOWN = -1  # sim_succeed when the env has no success signal (a real rig)


@dataclass
class Positive:
    path: Path
    frame: dict  # flattened observation: {"state": float32 (D,), camera: uint8 image}
    version: int  # classifier version that called it
    prob: float  # its success probability
    sim_succeed: int  # 1 / 0 the simulator's success flag at that step, UNKNOWN on a real rig


def save_positive(
    folder: str | Path, obs: dict, version: int, prob: float, sim_succeed: int = UNKNOWN
) -> Path:
    arrays = {f"frame.{k}": np.asarray(v) for k, v in obs.items()}
    arrays["meta"] = np.array(
        json.dumps({"version": int(version), "prob": float(prob), "sim_succeed": int(sim_succeed)})
    )
    return write_npz(Path(folder) / unique_name("positive"), arrays)


def load_positives(folder: str | Path) -> tuple[list[Positive], list[str]]:
    """Every unreviewed positive frame in `folder`, oldest first, and one message per unreadable
    file."""
    found, problems = [], []
    for path in sorted(Path(folder).glob("positive_*.npz")):
        try:
            arrays = read_npz(path)
            meta = json.loads(str(arrays.pop("meta")))
            frame = {k[len("frame.") :]: v for k, v in arrays.items() if k.startswith("frame.")}
            found.append(
                Positive(
                    path, frame, int(meta["version"]), float(meta["prob"]), int(meta["sim_succeed"])
                )
            )
        except (ValueError, KeyError) as err:
            problems.append(f"{path.name}: {err}")
    return found, problems


def mark_reviewed(positives: list[Positive]) -> None:
    """Move reviewed frames into `reviewed/` (after their labels are saved) so the next review skips
    them."""
    folders = set()
    for p in positives:
        target = p.path.parent / REVIEWED
        target.mkdir(exist_ok=True)
        os.replace(p.path, target / p.path.name)
        folders.add(p.path.parent)
    for folder in folders:
        fsync_directory(folder)
