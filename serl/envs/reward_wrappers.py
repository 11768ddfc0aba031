"""Where the reward comes from when it is not the simulator's: a learned success classifier
(`RewardClassifierWrapper`) or the operator's key (`HumanRewardWrapper`). Both sit above the flatten
wrapper in the stack `serl.envs.stack.make_policy_env` builds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

from serl.envs.observation import flat_state_layout
from serl.reward.positives import UNKNOWN, save_positive


class RewardClassifierWrapper(gym.Wrapper):
    """Reward from a success classifier (any callable obs -> probability): reward 1 and terminated
    when the probability reaches the threshold (and the optional state predicate holds), else reward
    0 (the env's own termination is kept). A classifier with `refresh()`, `version`, `threshold` and
    `confirm_steps` (a `ClassifierFolder`) is refreshed on every reset, so a newer version is used
    from the next episode on; its threshold is the one chosen on validation, and success needs
    `confirm_steps` consecutive calls. `info["classifier_prob"]` and `info["classifier_version"]`
    every step.

    A classifier that raises or returns a non-finite value never stops the robot: that step gets
    reward 0, `info["classifier_error"]` says why, and `errors` counts it. With `positives_dir`,
    each frame called success is saved there for review (`serl record-labels --from-run`), with the
    simulator's success flag when there is one (`info["succeed_known"]` False, as a real rig reports
    it, or no `succeed`: stored as UNKNOWN, never as "no").
"""

    def __init__(self, env: gym.Env, classifier: Callable[[dict], float], threshold: float = 0.5,
                 predicate=None, positives_dir: str | Path | None = None):
        super().__init__(env)
        self.classifier = classifier
        self.threshold = threshold
        self.predicate = predicate  # a serl.reward.predicates.StatePredicate, or None
        # the actor sets runs/<run>/classifier_positives when it has a run
        self.positives_dir = positives_dir
        self.errors = 0
        # consecutive steps called success (a versioned classifier may ask for several)
        self._streak = 0
        self._layout = flat_state_layout(env) if predicate is not None and predicate.needs() else {}
        missing = set(predicate.needs() if predicate is not None else ()) - set(self._layout)
        if missing:
            raise ValueError(
                f"state predicate {predicate.name!r} needs state entries {sorted(missing)}"
            )

    @property
    def classifier_version(self) -> int:
        return int(getattr(self.classifier, "version", 0))

    def reset(self, **kwargs):
        refresh = getattr(self.classifier, "refresh", None)
        if refresh is not None:
            try:
                refresh()
            # a half-copied or broken new version: keep judging with the current one
            except Exception as err:
                self.errors += 1
                logging.getLogger("serl.reward").warning(
                    "classifier reload failed, keeping v%d: %s", self.classifier_version, err
                )
        obs, info = self.env.reset(**kwargs)
        self._streak = 0
        info["classifier_version"] = self.classifier_version
        return obs, info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        try:
            prob = float(self.classifier(obs))
            if not np.isfinite(prob):
                raise ValueError(f"probability {prob} is not finite")
        except Exception as err:  # any failure of a learned model must not crash the actor
            self.errors += 1
            info["classifier_error"] = f"{type(err).__name__}: {err}"
            prob = 0.0
        threshold = float(getattr(self.classifier, "threshold", self.threshold))
        called = prob >= threshold and (
            self.predicate is None or self.predicate.holds(obs["state"], self._layout)
        )
        self._streak = self._streak + 1 if called else 0
        success = self._streak >= int(getattr(self.classifier, "confirm_steps", 1))
        info["classifier_prob"] = prob
        info["classifier_threshold"] = threshold
        info["classifier_version"] = self.classifier_version
        # aborted: a repeat frame
        if success and self.positives_dir is not None and info.get("executed", True):
            self._keep_positive(obs, prob, info)
        return obs, float(success), terminated or success, truncated, info

    def _keep_positive(self, obs: dict, prob: float, info: dict) -> None:
        known = "succeed" in info and info.get("succeed_known", True)
        sim = int(bool(info["succeed"])) if known else UNKNOWN
        try:
            save_positive(self.positives_dir, obs, self.classifier_version, prob, sim)
        # a full disk must not stop the robot; the frame is only review material
        except OSError as err:
            logging.getLogger("serl.reward").warning(
                "could not keep a classifier positive: %s", err
            )


class HumanRewardWrapper(gym.Wrapper):
    """The operator alone gives the reward, with a key or button: "mark_success" -> reward 1 and
    terminated; "mark_failure" -> reward 0 and terminated; else reward 0 (the env's own reward is
    dropped, its termination kept). The mark is the intervention wrapper's `info["marked"]` (once
    per press), else its `info["held"]` (controls pressed in this episode, so a button still held
    through a reset does not end the next episode at its first step), else `info["buttons"]` for an
    env without that wrapper. `info["operator_label"]` says which, if any."""

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        buttons = info.get("held", info.get("buttons", ()))
        label = info.get("marked") or next(
            (b.removeprefix("mark_") for b in ("mark_success", "mark_failure") if b in buttons),
            None,
        )
        if label is None:
            return obs, 0.0, terminated, truncated, info
        info["operator_label"] = label
        return obs, float(label == "success"), True, truncated, info
