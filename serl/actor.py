"""The actor loop: step the env through the policy wrapper stack with the newest weights it has, add every
transition with its provenance, report episode stats. It never waits on the network inside a step: weights are
polled (non-blocking) and `add` only appends to the local spool or queue.

The loop does not know which transport it has; it sees `Adder`, `VariableClient` and `StatsSink`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from serl.agents.factory import policy_functions
from serl.agents.sac import SACConfig
from serl.transport.interfaces import Adder, StatsSink, VariableClient, WeightsVersion

log = logging.getLogger("serl.actor")
RESUMABLE = {"resumable": True}


class LearnerRefused(RuntimeError):
    """The learner refused this actor (spec or config mismatch); acting on would be wasted."""


@dataclass(frozen=True)
class ActorConfig:
    actor_id: str = "actor-0"  # stable across restarts: the learner keeps its watermark under this id
    max_env_steps: int | None = field(default=None, metadata=RESUMABLE)  # stop after this many steps in total
    max_steps_per_update: float | None = None  # rate limit: env steps allowed per learner update (None: none)
    free_steps: int = 500  # steps allowed before the rate limit applies (fills the learner's minimum)
    weights_timeout_s: float = 120.0  # start-up: how long to wait for the learner's first weights
    flush_timeout_s: float = 120.0  # at the end: how long to wait for the learner to acknowledge everything
    eval_every_episodes: int = field(default=10, metadata=RESUMABLE)  # training episodes between evaluations; 0: none
    eval_episodes: int = field(default=10, metadata=RESUMABLE)  # episodes per evaluation (no interventions)
    takeover_decay: bool = True  # scale the scripted operator's take-over chance by (1 - evaluation success)


@dataclass
class ActorCounters:
    env_steps: int = 0  # transitions produced, ever (== the next sequence number)
    episodes: int = 0  # next episode id
    weights: WeightsVersion | None = None  # version of the params now in use
    takeover_scale: float = 1.0  # the scripted operator's take-over scale from the last evaluation


class EpisodeTracker:
    """Per-episode statistics the operator and TensorBoard see. Created after the env's reset, so time in resets
    is not episode time; time the operator paused (`paused_s` of each step) is subtracted too."""

    def __init__(self):
        self.start = time.monotonic()
        self.ret, self.length, self.interventions, self.takeovers, self.paused = 0.0, 0, 0, 0, 0.0
        self._was_intervened = False

    def step(self, reward: float, intervened: bool, paused_s: float = 0.0, executed: bool = True) -> None:
        self.ret += reward
        self.length += executed  # a step that sent nothing (abort) is no episode step
        self.interventions += intervened  # steps the operator acted
        self.takeovers += intervened and not self._was_intervened  # separate take-overs
        self._was_intervened = intervened
        self.paused += paused_s

    def summary(self, episode_id: int, info: dict, env_steps: int, version: WeightsVersion | None) -> dict:
        return {
            "episode_id": episode_id, "return": self.ret, "length": self.length,
            "success": float(bool(info.get("succeed", False))), "interventions": self.interventions,
            "intervention_rate": self.interventions / max(1, self.length), "takeovers": self.takeovers,
            "seconds": time.monotonic() - self.start - self.paused, "paused_s": self.paused,
            "aborted": float(bool(info.get("aborted", False))), "env_steps": env_steps,
            "policy_step": version.step if version else -1,
        }


class EpisodeVideo:
    """Frames of one episode from the env's `render()` (the cameras side by side), written atomically as
    `<folder>/<name>.mp4`. A video is a convenience: an env that cannot render, or a failed write, is logged once
    and never stops the actor."""

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


def transition(obs, action, reward, next_obs, terminated, truncated, info, episode_id, step, version,
               classifier_version=0) -> dict:
    """One transition in the schema of `serl.data` (actions are the executed ones, in the policy's frame)."""
    executed = info.get("intervene_action", info.get("executed_action", action))  # operator's, a hold, else ours
    return {
        "observations": obs, "actions": np.asarray(executed, np.float32), "rewards": np.float32(reward),
        "masks": np.float32(1.0 - terminated), "dones": np.bool_(terminated or truncated),
        "next_observations": next_obs, "intervened": np.bool_(info.get("intervened", False)),
        "grasp_penalty": np.float32(info.get("grasp_penalty", 0.0)), "episode_id": np.int64(episode_id),
        "step": np.int32(step),
        "policy_version": np.array([version.incarnation, version.step] if version else [-1, -1], np.int64),
        "classifier_version": np.int32(classifier_version), "timestamp": np.float64(time.time()),
    }


class Actor:
    def __init__(self, env, agent_cfg: SACConfig, cfg: ActorConfig, adder: Adder, client: VariableClient,
                 stats: StatsSink, state_dir: Path | None = None, seed: int = 0,
                 policy_view: Callable[[dict], dict] = lambda obs: obs, produced: int = 0,
                 link_error: Callable[[], str | None] = lambda: None, video_dir: Path | None = None):
        """`policy_view` maps an observation to what the policy sees (the wire's JPEG round trip of frames);
        `produced` is how many transitions this actor id has ever produced (its spool's next sequence), which
        can be ahead of the state file after a crash mid-episode; `link_error` returns why the learner refused
        this actor (a handshake mismatch), if it did; `video_dir` receives a video of each evaluation's first
        episode (`eval_<env steps>.mp4`)."""
        self.env, self.cfg, self.adder, self.client, self.stats = env, cfg, adder, client, stats
        self.sample, self.evaluate = policy_functions(agent_cfg, int(np.prod(env.action_space.shape)))
        self.policy_view, self.link_error = policy_view, link_error
        self.video_dir = Path(video_dir) if video_dir else None
        self.state_path = Path(state_dir) / f"{cfg.actor_id}.json" if state_dir else None
        self.counters = self._load_counters()
        self.counters.env_steps = max(self.counters.env_steps, produced)
        self.key = jax.random.PRNGKey(seed + 104729 * self.counters.episodes)
        self.params = None
        self._set_takeover_scale(self.counters.takeover_scale)  # a restarted actor keeps its operator schedule
        # Frames a reward classifier calls success are kept in the run folder for review (no-op without one).
        if state_dir is not None and hasattr(env, "set_wrapper_attr"):
            env.set_wrapper_attr("positives_dir", Path(state_dir).parent / "classifier_positives", force=False)

    # ---------- counters that never go backwards ----------
    def _load_counters(self) -> ActorCounters:
        if self.state_path is None or not self.state_path.exists():
            return ActorCounters()
        saved = json.loads(self.state_path.read_text())
        return ActorCounters(env_steps=int(saved["env_steps"]), episodes=int(saved["episodes"]),
                             takeover_scale=float(saved.get("takeover_scale", 1.0)))

    def _claim_episode(self) -> int:
        """Reserve the next episode id on disk before producing any of its transitions, so a crash mid-episode
        can never reuse it."""
        episode = self.counters.episodes
        self.counters.episodes += 1
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"env_steps": self.counters.env_steps, "episodes": self.counters.episodes,
                                       "takeover_scale": self.counters.takeover_scale}))
            tmp.replace(self.state_path)
        return episode

    # ---------- weights ----------
    def _take(self, update) -> None:
        if update is not None:
            version, params = update
            self.params = jax.device_put(params)  # once per version, not per inference
            self.counters.weights = version

    def wait_for_weights(self) -> None:
        deadline = time.monotonic() + self.cfg.weights_timeout_s
        while self.params is None and time.monotonic() < deadline:
            self._check_link()
            self._take(self.client.poll() or self.client.wait(0.5))
        if self.params is None:
            raise TimeoutError(f"no policy weights from the learner within {self.cfg.weights_timeout_s} s")

    def _check_link(self) -> None:
        if (error := self.link_error()) is not None:
            raise LearnerRefused(f"the learner refused actor {self.cfg.actor_id!r}: {error}")

    def _rate_limited(self) -> bool:
        limit = self.cfg.max_steps_per_update
        if limit is None or self.counters.weights is None:
            return False
        return self.counters.env_steps > self.cfg.free_steps + limit * self.counters.weights.step

    # ---------- the loop ----------
    def act(self, obs: dict) -> np.ndarray:
        self.key, sub = jax.random.split(self.key)
        return np.asarray(self.sample(self.params, self.policy_view(obs), sub))

    def run(self, stop: threading.Event) -> ActorCounters:
        """Run episodes until `stop` or the step budget; a started episode is always finished."""
        self.wait_for_weights()
        while not stop.is_set() and not self._budget_spent():
            self._check_link()
            while getattr(self.adder, "full", False) and not stop.is_set():
                log.warning("the actor's spool is full: waiting for the learner before a new episode")
                time.sleep(1.0)
            self.run_episode(stop)
            every = self.cfg.eval_every_episodes
            if every and self.counters.episodes % every == 0 and not stop.is_set():
                self.run_evaluation(stop)
        # A stop request exits promptly: what is not acknowledged stays in the spool for the next start.
        if not self.adder.flush(timeout=5.0 if stop.is_set() else self.cfg.flush_timeout_s):
            log.warning("the learner has not acknowledged everything yet; the rest stays in the spool and is sent "
                        "when this actor runs again")
        return self.counters

    def _budget_spent(self) -> bool:
        return self.cfg.max_env_steps is not None and self.counters.env_steps >= self.cfg.max_env_steps

    def run_evaluation(self, stop: threading.Event) -> dict:
        """Episodes with the deterministic policy and no interventions; nothing is added to the buffers."""
        self._set_interventions(False)
        wins = 0
        try:
            for episode in range(self.cfg.eval_episodes):
                video = EpisodeVideo(self.env, self.video_dir, f"eval_{self.counters.env_steps:08d}") \
                    if episode == 0 else None
                obs, info = self.env.reset()
                done = False
                while not done and not stop.is_set():
                    if video:
                        video.capture()
                    action = np.asarray(self.evaluate(self.params, self.policy_view(obs)))
                    obs, _, terminated, truncated, info = self.env.step(action)
                    done = terminated or truncated
                if video and video.capture():
                    video.write()
                wins += bool(info.get("succeed", False))
        finally:
            self._set_interventions(True)
        success = wins / max(1, self.cfg.eval_episodes)
        if self.cfg.takeover_decay:
            self._set_takeover_scale(1.0 - success)
        report = {"eval_success": success, "eval_episodes": self.cfg.eval_episodes,
                  "env_steps": self.counters.env_steps,
                  "policy_step": self.counters.weights.step if self.counters.weights else -1}
        self.stats.episode(report)
        return report

    def _set_interventions(self, enabled: bool) -> None:
        try:
            self.env.set_wrapper_attr("interventions_enabled", enabled)
        except AttributeError:
            pass  # no intervention device in this env

    def _set_takeover_scale(self, scale: float) -> None:
        try:
            device = self.env.get_wrapper_attr("device")
        except AttributeError:
            return
        if hasattr(device, "takeover_scale"):
            device.takeover_scale = scale
            self.counters.takeover_scale = scale

    def run_episode(self, stop: threading.Event) -> dict:
        episode = self._claim_episode()
        self.env.set_wrapper_attr("operator_stop", stop, force=False)  # an operator wait ends on shutdown
        obs, info = self.env.reset()
        tracker, done, step = EpisodeTracker(), False, 0
        while not done:
            self._take(self.client.poll())
            while self._rate_limited() and not stop.is_set():
                time.sleep(0.01)
                self._take(self.client.poll())
            action = self.act(obs)
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            executed = bool(info.get("executed", True))  # False: an abort ended the episode and moved nothing,
            if executed:  # so no transition happened (the episode's last recorded one stays as it was)
                self.adder.add(transition(obs, action, reward, next_obs, terminated, truncated, info, episode, step,
                                          self.counters.weights, info.get("classifier_version", 0)))
                self.counters.env_steps += 1
            tracker.step(float(reward), bool(info.get("intervened", False)), float(info.get("paused_s", 0.0)),
                         executed)
            obs, step, done = next_obs, step + executed, terminated or truncated
        summary = tracker.summary(episode, info, self.counters.env_steps, self.counters.weights)
        self.stats.episode(summary)
        return summary
