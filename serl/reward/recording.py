"""Recording success labels: every step's frame (the configured cameras + the flattened state) with
its label. On a real rig the label is the operator holding "mark_success" (the intervention wrapper
in label mode, whose `info["held"]` counts only a hold that began in this episode); in simulation it
is the simulator's success flag (`info["succeed"]`), on episodes of the scripted operator that
include near misses (`NearMissOperator`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from serl.reward.labels import LabelSet, from_frames
from serl.reward.near_miss import NearMissConfig

LabelSource = Literal["sim", "operator"]


@dataclass(frozen=True)
class LabelRecordingConfig:
    positives: int = 200  # success frames to record
    negatives: int = 600  # failure frames to record
    # end an episode after this many success frames (more episodes, more variety)
    positives_per_episode: int = 10
    # keep every n-th failure frame of an episode (neighbouring frames are near copies)
    negative_stride: int = 3
    # keep every failure frame this many steps before a success frame (the hardest ones)
    hard_window: int = 5
    # simulation: how the operator fails
    near_miss: NearMissConfig = field(default_factory=NearMissConfig)


def frame_label(info: dict, source: LabelSource) -> bool:
    """The success label of the step that produced `info`."""
    if source == "sim":
        return bool(info["succeed"])
    if "held" not in info:
        raise ValueError(
            "operator labels need the intervention wrapper's info['held'] (an env with an operator "
            "device); this env reports none"
        )
    return "mark_success" in info["held"]


def record_episode(
    env, source: LabelSource, cfg: LabelRecordingConfig, seed: int, want_pos: bool, want_neg: bool
) -> tuple[list[dict], list[bool], bool]:
    """One episode: (frames kept, their labels, whether any frame was a success). Failure frames are
    kept every `negative_stride` steps, and all of the `hard_window` steps before a success frame
    (the hardest ones)."""
    obs, _ = env.reset(seed=seed)
    steps: list[tuple[dict, bool]] = []
    done, positives = False, 0
    while not done:
        obs, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
        # an aborted step moved nothing: its frame repeats the previous one
        if info.get("executed", True):
            success = frame_label(info, source)
            steps.append((obs, success))
            positives += success
        done = terminated or truncated or positives >= cfg.positives_per_episode
    labels = np.array([label for _, label in steps], bool)
    hard = np.zeros(len(steps), bool)
    for i in np.flatnonzero(labels[1:] & ~labels[:-1]) + 1:  # each step where success begins
        hard[max(0, i - cfg.hard_window) : i] = True
    failures = np.cumsum(~labels)  # the stride counts failure frames only
    keep = np.where(labels, want_pos, want_neg & (hard | (failures % cfg.negative_stride == 0)))
    return [steps[i][0] for i in np.flatnonzero(keep)], labels[keep].tolist(), bool(labels.any())


def record_labels(
    env,
    cameras: tuple[str, ...],
    source: LabelSource,
    cfg: LabelRecordingConfig,
    seed: int,
    near_miss=None,
    max_episodes: int | None = None,
    progress: Callable[[str], None] | None = print,
    stop: Callable[[], bool] = lambda: False,
) -> LabelSet:
    """Episodes until `cfg.positives` success and `cfg.negatives` failure frames are kept (or
    `max_episodes`, `stop()` or Ctrl+C); frames of a class already complete are not kept.
    `near_miss` (a `NearMissOperator` at the env's device) draws each episode's mode; once the
    failure frames are complete only successful episodes run."""
    frames: list[dict] = []
    labels: list[bool] = []
    episodes: list[int] = []
    n_pos = n_neg = episode = 0
    start = time.monotonic()
    while (n_pos < cfg.positives or n_neg < cfg.negatives) and not stop():
        if max_episodes is not None and episode >= max_episodes:
            break
        mode = (
            near_miss.new_episode("success" if n_neg >= cfg.negatives else None)
            if near_miss
            else "operator"
        )
        try:
            got, got_labels, succeeded = record_episode(
                env, source, cfg, seed + episode, n_pos < cfg.positives, n_neg < cfg.negatives
            )
        # Ctrl+C: the unfinished episode is dropped, the finished ones are returned
        except KeyboardInterrupt:
            if progress:
                progress("interrupted: keeping the finished episodes")
            break
        pos = sum(got_labels)
        keep_pos, keep_neg = (
            min(pos, cfg.positives - n_pos),
            min(len(got) - pos, cfg.negatives - n_neg),
        )
        for frame, label in zip(got, got_labels, strict=True):
            if (keep_pos if label else keep_neg) > 0:
                frames.append(frame)
                labels.append(label)
                episodes.append(episode)
                keep_pos, keep_neg = keep_pos - label, keep_neg - (not label)
        n_pos, n_neg = int(np.sum(labels)), len(labels) - int(np.sum(labels))
        episode += 1
        if progress:
            progress(
                f"episode {episode} ({mode}, {'success' if succeeded else 'failure'}): success "
                "frames "
                f"{n_pos}/{cfg.positives}, failure frames {n_neg}/{cfg.negatives} | "
                f"{time.monotonic() - start:.0f} s"
            )
    return from_frames(frames, labels, episodes, cameras)
