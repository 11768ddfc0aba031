"""Demonstration episode files: one `.npz` per successful episode (numpy only, never pickle),
written atomically so Ctrl+C or a crash never leaves a half-written file. A demos folder accumulates
them; the learner loads every file into its demo buffer (idempotently: each file is its own source
with its own sequence numbers).

Layout of a file: `observations.<key>` holds the T+1 observations of a T-step episode (each frame
once; transition t is observations t -> t+1), every other transition field is stacked over the T
steps, `spec` is the transition spec's JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from serl.data.schema import Batch, TransitionSpec, batch_len, fixed_fields
from serl.durable import write_npz

PREFIX = "observations."


def save_episode(folder: str | Path, batch: Batch, spec: TransitionSpec) -> Path:
    """Write one episode (a batch of its transitions, in order) as a new file in `folder`; returns
    its path."""
    spec.validate_batch(batch)
    n = batch_len(batch)
    for key in batch["observations"]:
        if not np.array_equal(batch["observations"][key][1:], batch["next_observations"][key][:-1]):
            raise ValueError(f"episode is not contiguous: observations[{key}] of step t+1 differ "
                             "from step t's next")
    arrays = {PREFIX + k: np.concatenate([v, batch["next_observations"][k][-1:]]) for k, v in
              batch["observations"].items()}
    arrays.update({name: np.asarray(batch[name]) for name in fixed_fields(spec.action_dim)})
    arrays["spec"] = np.array(json.dumps(spec.to_json(), sort_keys=True))
    name = f"episode_{time.strftime('%Y%m%d-%H%M%S')}_{time.time_ns() % 10**9:09d}_{n:04d}.npz"
    return write_npz(Path(folder) / name, arrays)


class UnusableDemos(ValueError):
    """A demo folder has episode files and not one of them loads for this config."""


def spec_difference(stored, expected: dict) -> str:
    """What a file's recorded spec has that this config's does not, in a few words."""
    if not isinstance(stored, dict):
        return "the file records no spec"
    parts = []
    if stored.get("action_dim") != expected["action_dim"]:
        parts.append(f"{stored.get('action_dim')}-D actions, this config's are "
                     f"{expected['action_dim']}-D")
    if stored.get("observations") != expected["observations"]:
        parts.append(f"observations {stored.get('observations')}, this config's "
                     f"{expected['observations']}")
    return "; ".join(parts) or "a different spec"


def load_episode(path: str | Path, spec: TransitionSpec) -> Batch:
    """The episode's transitions as a batch; ValueError naming the file if it is corrupt or of
    another spec."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # zip, header and truncation errors come in many types
        raise ValueError(f"{path.name}: not a readable episode file "
                         f"({type(err).__name__}: {err})") from None
    stored = json.loads(str(arrays.pop("spec", "null")))
    expected = json.loads(json.dumps(spec.to_json(), sort_keys=True))
    if stored != expected:
        raise ValueError(f"{path.name}: recorded for another observation/action spec "
                         f"({spec_difference(stored, expected)})")
    obs = {k[len(PREFIX):]: v for k, v in arrays.items() if k.startswith(PREFIX)}
    batch = {"observations": {k: v[:-1] for k, v in obs.items()},
             "next_observations": {k: v[1:] for k, v in obs.items()}}
    batch.update({k: v for k, v in arrays.items() if not k.startswith(PREFIX)})
    try:
        spec.validate_batch(batch)
    except ValueError as err:
        raise ValueError(f"{path.name}: {err}") from None
    return batch


def load_demos(folder: str | Path, spec: TransitionSpec) -> tuple[dict[str, Batch], list[str]]:
    """Every readable episode in `folder` by file name, and one message per file that
    was skipped."""
    episodes, problems = {}, []
    for path in sorted(Path(folder).glob("*.npz")):
        try:
            episodes[path.stem] = load_episode(path, spec)
        except ValueError as err:
            problems.append(str(err))
    return episodes, problems
