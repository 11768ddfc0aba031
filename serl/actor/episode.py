"""One episode as the actor sees it: each step as a transition in the schema of `serl.data`, the
statistics the operator and TensorBoard see, and the video of an evaluation episode. Every `info`
read here is a `serl.envs.contract.StepInfo` key."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from serl.envs.contract import StepInfo
from serl.transport.interfaces import WeightsVersion

log = logging.getLogger("serl.actor")


def transition(obs, action, reward, next_obs, terminated, truncated, info: StepInfo, episode_id,
               step, version, classifier_version=0) -> dict:
    """One transition in the schema of `serl.data` (actions are the executed ones, in the policy's
    frame)."""
    # the operator's action, a hold after a pause, else the policy's own
    executed = info.get("intervene_action", info.get("executed_action", action))
    policy_version = [version.incarnation, version.step] if version else [-1, -1]
    return {
        "observations": obs, "actions": np.asarray(executed, np.float32),
        "rewards": np.float32(reward), "masks": np.float32(1.0 - terminated),
        "dones": np.bool_(terminated or truncated), "next_observations": next_obs,
        "intervened": np.bool_(info.get("intervened", False)),
        "grasp_penalty": np.float32(info.get("grasp_penalty", 0.0)),
        "episode_id": np.int64(episode_id), "step": np.int32(step),
        "policy_version": np.array(policy_version, np.int64),
        "classifier_version": np.int32(classifier_version), "timestamp": np.float64(time.time()),
    }


class EpisodeTracker:
    """Per-episode statistics the operator and TensorBoard see. Created after the env's reset, so
    time in resets is not episode time; time the operator paused (`paused_s` of each step) is
    subtracted too."""

    def __init__(self):
        self.start = time.monotonic()
        self.ret, self.length, self.interventions, self.takeovers = 0.0, 0, 0, 0
        self.paused = 0.0
        self._was_intervened = False

    def step(self, reward: float, intervened: bool, paused_s: float = 0.0,
             executed: bool = True) -> None:
        self.ret += reward
        # a step that sent nothing (abort) is no episode step
        self.length += executed
        # steps the operator acted, and separate take-overs
        self.interventions += intervened
        self.takeovers += intervened and not self._was_intervened
        self._was_intervened = intervened
        self.paused += paused_s

    def summary(self, episode_id: int, info: StepInfo, env_steps: int,
                version: WeightsVersion | None) -> dict:
        return {
            "episode_id": episode_id, "return": self.ret, "length": self.length,
            "success": float(bool(info.get("succeed", False))),
            "interventions": self.interventions,
            "intervention_rate": self.interventions / max(1, self.length),
            "takeovers": self.takeovers,
            "seconds": time.monotonic() - self.start - self.paused, "paused_s": self.paused,
            "aborted": float(bool(info.get("aborted", False))), "env_steps": env_steps,
            "policy_step": version.step if version else -1,
        }


class EpisodeVideo:
    """Frames of one episode from the env's `render()` (the cameras side by side), written
    atomically as `<folder>/<name>.mp4`. A video is a convenience: an env that cannot render, or a
    failed write, is logged once and never stops the actor."""

    def __init__(self, env, folder: Path | None, name: str):
        self.env, self.frames = env, []
        self.path = folder / f"{name}.mp4" if folder else None

    def capture(self) -> bool:
        if self.path is None:
            return False
        try:
            self.frames.append(np.asarray(self.env.unwrapped.render()))
        except Exception as err:  # no renderer on this env
            log.warning("no evaluation video: %s", err)
            self.path = None
        return self.path is not None

    def write(self) -> Path | None:
        if self.path is None or not self.frames:
            return None
        import imageio

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.mp4")
            imageio.v2.mimwrite(tmp, self.frames, fps=10)
            tmp.replace(self.path)
            return self.path
        except OSError as err:
            log.warning("could not write the evaluation video %s: %s", self.path, err)
            return None
