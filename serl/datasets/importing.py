"""`import_lerobot`: a LeRobotDataset as a task's demonstrations, one `.npz` episode file each
(`serl.data.demos.save_episode`), through a declared mapping (`import_map`).

Everything that can be refused is refused before a file is written: the mapping against the
features and fps, then one pass over the action column for values outside [-1, 1]. An episode of
this project's export (marked final observations) gives back its transitions exactly, frames
within the video codec's error; any other dataset follows LeRobot's own convention: transition t
goes from frame t to frame t + 1, and the last frame's transition observes itself next.

With `prior` the episodes are written as unlabelled prior episodes (`serl.learner.prior`): the
dataset's reward and done features are not read (a dataset without them imports), every
transition gets `classifier_version` -1 (reward unknown) with placeholder reward 0, mask 1 and
done on the last step; the learner's reward classifier rewards them at start.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from serl.data.demos import save_episode
from serl.data.schema import Batch
from serl.datasets import features as F
from serl.datasets.features import TaskFeatures
from serl.datasets.import_map import (
    EPISODE_END,
    NEVER,
    SUCCESS_AT_END,
    ZERO,
    ImportMapping,
    MappingError,
    Resolved,
    resolve,
)
from serl.datasets.reader import EpisodeRef, LeRobotReader
from serl.learner.prior import UNLABELLED

ACTION_LIMIT = 1.0 + 1e-6  # the replay storage's own tolerance for a policy action


def check_actions(reader: LeRobotReader, action: str) -> None:
    """MappingError naming the episodes whose actions leave [-1, 1]."""
    worst, bad = 0.0, []
    for episode, values in reader.column_everywhere(action):
        peak = float(np.nanmax(np.abs(values))) if values.size else 0.0
        if peak > ACTION_LIMIT or not np.isfinite(values).all():
            bad.append(episode)
            worst = max(worst, peak)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise MappingError(f"{action}: values outside [-1, 1] (max |a| = {worst:.3g}) in "
                           f"episodes {shown}: this task's actions are the policy's, scaled to "
                           "[-1, 1]; map `action` to a feature in that scale, or rescale the "
                           "dataset")


def _flag(columns: dict[str, np.ndarray], rule: str, n: int, end: bool) -> np.ndarray:
    if rule == EPISODE_END:
        return np.arange(n) == n - 1 if end else np.zeros(n, bool)
    if rule == NEVER:
        return np.zeros(n, bool)
    return columns[rule].reshape(n).astype(bool)


def episode_batch(reader: LeRobotReader, ref: EpisodeRef, got: Resolved, task: TaskFeatures,
                  episode_id: int) -> Batch | None:
    """One dataset episode as a batch of the task's transitions (None: it has no transition)."""
    keys = {*got.state, got.action, *got.provenance, "frame_index"}
    keys |= {k for k in (got.reward, got.terminated, got.truncated, got.grasp_penalty)
             if k not in (SUCCESS_AT_END, EPISODE_END, NEVER, ZERO)}
    if got.final:
        keys.add(F.FINAL)
    cols = reader.columns(ref, sorted(keys))
    frames = {cam: reader.frames(ref, name) for cam, name in got.cameras.items()}
    state = np.concatenate([cols[k].reshape(ref.length, -1) for k in got.state], axis=1)
    obs = {"state": state.astype(np.float32), **frames}
    final = cols[F.FINAL].reshape(-1).astype(bool) if got.final else np.zeros(ref.length, bool)
    if final[:-1].any():
        raise ValueError(f"episode {ref.index}: a final observation before its last frame")
    n = ref.length - 1 if final[-1] else ref.length  # transitions
    if n <= 0:
        return None
    nxt = np.minimum(np.arange(1, n + 1), ref.length - 1)  # the last frame observes itself
    rows = {k: v[:n] for k, v in cols.items()}
    terminated = _flag(rows, got.terminated, n, True)
    truncated = _flag(rows, got.truncated, n, False)
    reward = (np.arange(n) == n - 1).astype(np.float32) if got.reward == SUCCESS_AT_END else (
        rows[got.reward].reshape(n))
    have = set(got.provenance)
    batch = {
        "observations": {k: v[:n] for k, v in obs.items()},
        "next_observations": {k: v[nxt] for k, v in obs.items()},
        "actions": rows[got.action].reshape(n, -1).astype(np.float32),
        "rewards": np.asarray(reward, np.float32), "masks": (~terminated).astype(np.float32),
        "dones": terminated | truncated,
        "intervened": rows[F.INTERVENED].astype(bool) if F.INTERVENED in have else np.zeros(
            n, bool),
        "grasp_penalty": np.zeros(n, np.float32) if got.grasp_penalty == ZERO else rows[
            got.grasp_penalty].reshape(n).astype(np.float32),
        "episode_id": rows[F.EPISODE_ID].astype(np.int64) if F.EPISODE_ID in have else np.full(
            n, episode_id, np.int64),
        "step": (rows[F.STEP] if F.STEP in have else rows["frame_index"]).astype(np.int32),
        "policy_version": rows[F.POLICY_VERSION].reshape(n, 2).astype(np.int64) if (
            F.POLICY_VERSION in have) else np.full((n, 2), -1, np.int64),
        "classifier_version": rows[F.CLASSIFIER_VERSION].astype(np.int32) if (
            F.CLASSIFIER_VERSION in have) else np.zeros(n, np.int32),
        # unknown outside this project: 0, not a made-up time
        "timestamp": rows[F.TIMESTAMP].astype(np.float64) if F.TIMESTAMP in have else np.zeros(n),
    }
    return batch


def unlabelled(batch: Batch) -> Batch:
    """An episode's transitions as a prior episode: reward unknown (`classifier_version` -1),
    placeholder reward 0 and mask 1, done only on the last step."""
    n = len(batch["rewards"])
    return {**batch, "rewards": np.zeros(n, np.float32), "masks": np.ones(n, np.float32),
            "dones": np.arange(n) == n - 1, "classifier_version": np.full(n, UNLABELLED, np.int32)}


def import_lerobot(dataset: Path, config, folder: Path, mapping: ImportMapping,
                   progress: Callable[[str], None] = print, prior: bool = False) -> list[Path]:
    """Write each episode of `dataset` as a demo file of `config`'s task in `folder` (with `prior`,
    as an unlabelled prior episode: `unlabelled`); returns the paths. A refusal (MappingError)
    comes before anything is written; a later failure removes the files this import wrote."""
    from serl.commands.record_demos import next_episode_id

    task = TaskFeatures.of(config)
    if prior:  # rules, not features: nothing about the dataset's reward is read or required
        mapping = dataclasses.replace(mapping, reward=SUCCESS_AT_END, terminated=NEVER,
                                      truncated=NEVER)
    reader = LeRobotReader(dataset)
    try:
        got = resolve(mapping, reader.features, reader.fps, task)
        names = reader.features[got.action].get("names")
        if names and list(names) != list(task.action_names):
            progress(f"warning: {got.action} names {list(names)}, this task's action is "
                     f"{list(task.action_names)}: check the mapping means the same axes")
        check_actions(reader, got.action)
        folder.mkdir(parents=True, exist_ok=True)
        first_id, written, start, last = next_episode_id(folder), [], time.monotonic(), 0.0
        try:
            for k, ref in enumerate(reader.episodes):
                batch = episode_batch(reader, ref, got, task, first_id + k)
                if batch is not None and prior:
                    batch = unlabelled(batch)
                if batch is not None:
                    try:
                        written.append(save_episode(folder, batch, task.spec))
                    except ValueError as err:
                        raise ValueError(f"episode {ref.index}: {err}") from None
                if time.monotonic() - last >= 2.0 or k == len(reader.episodes) - 1:
                    last = time.monotonic()
                    progress(f"imported {k + 1}/{len(reader.episodes)} episodes | "
                             f"{time.monotonic() - start:.0f} s")
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return written
    finally:
        reader.close()
