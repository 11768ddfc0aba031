"""Unlabelled prior data: episodes whose reward is unknown (a lab's teleoperation logs, imported
with `serl import-demos DATASET TASK --prior`), rewarded at learner start by the task's success
classifier and appended to a third buffer, `RUN/buffers/prior`, that `learner.prior_fraction` of
each minibatch is drawn from (`serl.learner.training`).

A prior episode file is a demo episode file (`serl.data.demos`) whose transitions say
`classifier_version` = `UNLABELLED` (-1): its rewards (0), masks (1) and done flags (the last
step) are placeholders. The learner judges every file of the prior folder (`learner.prior_dir`,
default the demos folder's name + "-prior") as `RewardClassifierWrapper` judges an online episode:
step t's reward comes from the classifier's probability on the observation the step led to
(`next_observations`), ANDed with `reward.predicate`; success is called after `confirm_steps`
consecutive calls at or above the version's threshold (a non-finite probability counts as 0).
The first success step gets reward 1 and mask 0 and ends the episode: the steps after it are left
out, as an online episode would have ended there. An episode without success keeps reward 0 and
mask 1 everywhere, its last step done (truncated). Every kept transition records the version
that judged it.

Each file is its own source (`prior:<file stem>`, sequences from 0), so a resume appends nothing
twice; a file already in the buffer is not judged again (its labels stay those of the version
that judged it first: a newer classifier labels only files added since). The classifier is
`learner.prior_classifier_dir`, else `reward.classifier_dir`; with neither (or a folder without a
version) prior data is refused (`PriorDataError`) before anything is opened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serl.data import ReplayStorage, TransitionSpec, batch_len, take
from serl.data.demos import load_demos
from serl.data.schema import Batch
from serl.reward.predicates import StatePredicate

log = logging.getLogger("serl.learner")
# `classifier_version` of a transition whose reward is not known yet (a prior episode file)
UNLABELLED = -1
SOURCE_PREFIX = "prior:"


class PriorDataError(RuntimeError):
    """Prior data is configured (`learner.prior_fraction` > 0) but cannot be used: no reward
    classifier, no episodes, or frames the classifier cannot judge."""


def default_prior_dir(config) -> Path:
    """A task config's prior folder: `learner.prior_dir`, else beside its demos folder
    (`demos/<task>-prior`)."""
    if config.learner.prior_dir:
        return Path(config.learner.prior_dir)
    demos = Path(config.demos_dir)
    return demos.with_name(demos.name + "-prior")


@dataclass(frozen=True)
class PriorSource:
    """Where a learner's prior episodes are and what rewards them (`PriorSource.of(config)`)."""

    # the prior episode files
    folder: Path
    # the classifier folder whose newest version judges them (None: none configured)
    classifier_dir: str | None
    # ANDed with the classifier, as on the actor (None: no predicate)
    predicate: StatePredicate | None = None
    # where each state entry sits in the flattened state (what the predicate reads)
    layout: dict[str, slice] = field(default_factory=dict)

    @classmethod
    def of(cls, config) -> PriorSource:
        """From a task config: its prior folder, classifier and reward predicate."""
        from serl.envs.contract import euler_observation_space, flat_state_keys, observation_space

        reward = config.reward
        predicate = reward.predicate if reward.predicate.name != "none" else None
        space = euler_observation_space(observation_space(config.env))
        layout, start = {}, 0
        for key in flat_state_keys(space):
            size = int(np.prod(space["state"][key].shape))
            layout[key], start = slice(start, start + size), start + size
        return cls(default_prior_dir(config),
                   config.learner.prior_classifier_dir or reward.classifier_dir, predicate, layout)


def require_classifier(source: PriorSource | None, fraction: float) -> None:
    """PriorDataError naming the fix unless prior data at `fraction` has a classifier version to
    reward it."""
    from serl.reward.store import latest_version

    if source is None or not source.classifier_dir:
        raise PriorDataError(
            f"learner.prior_fraction is {fraction:g}, but prior episodes are rewarded by the "
            "task's reward classifier and the config names none: train one (serl train-reward "
            "TASK) and give it with --reward.classifier-dir classifiers/TASK (or "
            "--learner.prior-classifier-dir), or set --learner.prior-fraction 0")
    if latest_version(source.classifier_dir) is None:
        raise PriorDataError(
            f"learner.prior_fraction is {fraction:g}, but the classifier folder "
            f"{source.classifier_dir} holds no version (v0001/, ...) to reward the prior "
            "episodes: train one with serl train-reward TASK, or set --learner.prior-fraction 0")


def check_prior(config) -> None:
    """The start-up refusal of a config whose prior data has no classifier (nothing is opened)."""
    fraction = config.learner.prior_fraction
    if fraction > 0:
        require_classifier(PriorSource.of(config), fraction)


class PriorJudge:
    """The newest version of a classifier folder, judging whole episodes in fixed-size batches
    (one compiled shape)."""

    def __init__(self, folder: str | Path, batch: int = 32):
        from serl.agents.classifier import probabilities_fn
        from serl.reward.store import config_from_meta, load_version

        self._params, meta = load_version(folder)
        self.cfg = config_from_meta(meta)
        self.version, self.threshold = int(meta["version"]), float(meta["threshold"])
        self.confirm_steps, self.batch = int(self.cfg.confirm_steps), int(batch)
        self._probs = probabilities_fn(self.cfg)

    def check(self, spec: TransitionSpec) -> None:
        """PriorDataError unless every camera the classifier looks at is in `spec` at its size."""
        have = spec.observation_spec
        for key in self.cfg.image_keys:
            want = tuple(self.cfg.image_shape)
            got = tuple(have[key][0]) if key in have else None
            if got != want:
                seen = "has no such camera" if got is None else f"has {got}"
                raise PriorDataError(
                    f"classifier v{self.version} judges camera {key!r} at {want}, this task "
                    f"{seen}: name a classifier trained for this task's cameras "
                    "(--learner.prior-classifier-dir) or import the prior data at its size")

    def probabilities(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        """Success probability of each observation (a batch); non-finite values are 0, as the
        reward wrapper counts a failed call."""
        keys = self.cfg.image_keys
        n = len(observations[keys[0]])
        out = []
        for start in range(0, n, self.batch):
            rows = np.arange(start, start + self.batch) % n  # the last batch wraps around
            out.append(np.asarray(self._probs(self._params,
                                              {k: observations[k][rows] for k in keys})))
        probs = np.concatenate(out)[:n].astype(np.float64) if out else np.zeros(0)
        return np.where(np.isfinite(probs), probs, 0.0)


def first_success(probs: np.ndarray, holds: np.ndarray, threshold: float,
                  confirm_steps: int) -> int | None:
    """The first step at which success is called: `confirm_steps` consecutive steps whose
    probability reaches `threshold` while the predicate `holds`; None when never."""
    streak = 0
    for step, called in enumerate((np.asarray(probs) >= threshold) & np.asarray(holds, bool)):
        streak = streak + 1 if called else 0
        if streak >= confirm_steps:
            return step
    return None


def labelled(batch: Batch, success: int | None, version: int) -> Batch:
    """An episode's transitions as the classifier rewards them: up to and including the first
    success step (reward 1, mask 0), else all of them (reward 0, mask 1); the last one done."""
    n = batch_len(batch) if success is None else success + 1
    out = take(batch, slice(0, n))
    out["rewards"] = np.zeros(n, np.float32)
    out["masks"] = np.ones(n, np.float32)
    out["dones"] = np.arange(n) == n - 1
    if success is not None:
        out["rewards"][-1], out["masks"][-1] = 1.0, 0.0
    out["classifier_version"] = np.full(n, version, np.int32)
    return out


def predicate_holds(source: PriorSource, states: np.ndarray) -> np.ndarray:
    """Whether the source's predicate holds on each flattened state (all True without one)."""
    if source.predicate is None:
        return np.ones(len(states), bool)
    return np.array([source.predicate.holds(s, source.layout) for s in states], bool)


def load_prior(storage: ReplayStorage, source: PriorSource, spec: TransitionSpec,
               fraction: float) -> int:
    """Judge the folder's episodes not yet in `storage` and append them, each file as its own
    source; returns the transitions appended. PriorDataError when no classifier can judge them,
    or when the folder holds no usable episode and the buffer is empty."""
    require_classifier(source, fraction)
    folder = source.folder
    episodes, problems = load_demos(folder, spec) if folder.is_dir() else ({}, [])
    for problem in problems:
        log.warning("skipped a prior episode file: %s", problem)
    if not episodes and storage.size == 0:
        detail = f", e.g. {problems[0]}" if problems else ""
        raise PriorDataError(
            f"learner.prior_fraction is {fraction:g}, but {folder} holds no prior episode that "
            f"loads for this config{detail}: import one (serl import-demos DATASET TASK --prior), "
            "name the folder (--learner.prior-dir), or set --learner.prior-fraction 0")
    marks = storage.watermarks()
    new = {name: b for name, b in episodes.items() if SOURCE_PREFIX + name not in marks}
    added = successes = 0
    judge = None
    for name, batch in new.items():
        if judge is None:
            judge = PriorJudge(source.classifier_dir)
            judge.check(spec)
        nxt = batch["next_observations"]
        probs = judge.probabilities(nxt)
        success = first_success(probs, predicate_holds(source, nxt["state"]), judge.threshold,
                                judge.confirm_steps)
        successes += success is not None
        added += storage.append(labelled(batch, success, judge.version), SOURCE_PREFIX + name,
                                0).appended
    judged = f" (judged by classifier v{judge.version}: {successes} successful)" if judge else ""
    log.info("prior buffer: %d transitions; %d of the %d files in %s were new, %d transitions "
             "appended%s", len(storage), len(new), len(episodes), folder, added, judged)
    return added
