"""The actor loop: step the env through the policy wrapper stack with the newest weights it has,
add every transition with its provenance, report episode stats. It never waits on the network
inside a step: weights are polled (non-blocking) and `add` only appends to the local spool or queue.

The loop does not know which transport it has; it sees `Adder`, `VariableClient` and `StatsSink`.
It changes the stack only through `PolicyEnv.controls` (`serl.envs.stack.StackControls`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from serl.actor.config import ActorConfig, LearnerRefused
from serl.actor.counters import ActorCounters, CounterFile
from serl.actor.episode import EpisodeTracker, EpisodeVideo, transition
from serl.agents.config import SACConfig
from serl.agents.factory import policy_functions
from serl.transport.interfaces import Adder, StatsSink, VariableClient

log = logging.getLogger("serl.actor")


class NoControls:
    """The controls of an env that is not a `PolicyEnv` (a bare env in a test): it has nothing to
    change, so every setter answers False, as `StackControls` does for a missing piece."""

    has_interventions = has_classifier = False

    def set_interventions(self, enabled: bool) -> bool:
        return False

    def takeover_scale(self) -> float | None:
        return None

    def set_takeover_scale(self, scale: float) -> bool:
        return False

    def set_operator_stop(self, stop) -> bool:
        return False

    def set_positives_dir(self, path) -> bool:
        return False


class Actor:
    def __init__(self, env, agent_cfg: SACConfig, cfg: ActorConfig, adder: Adder,
                 client: VariableClient, stats: StatsSink, state_dir: Path | None = None,
                 seed: int = 0, policy_view: Callable[[dict], dict] = lambda obs: obs,
                 produced: int = 0, link_error: Callable[[], str | None] = lambda: None,
                 video_dir: Path | None = None, feed=None):
        """`policy_view` maps an observation to what the policy sees (the wire's JPEG round trip
        of frames); `produced` is how many transitions this actor id has ever produced (its
        spool's next sequence), which can be ahead of the state file after a crash mid-episode;
        `link_error` returns why the learner refused this actor (a handshake mismatch), if it
        did; `video_dir` receives a video of each evaluation's first episode
        (`eval_<env steps>.mp4`); `feed` (a `serl.dashboard.feed.DashboardFeed`) is told every
        reset, step and episode end, and flushed as each action goes to the env."""
        self.env, self.cfg, self.adder, self.client, self.stats = env, cfg, adder, client, stats
        self.controls = getattr(env, "controls", None) or NoControls()
        action_dim = int(np.prod(env.action_space.shape))
        self.sample, self.evaluate = policy_functions(agent_cfg, action_dim)
        self.policy_view, self.link_error, self.feed = policy_view, link_error, feed
        self.video_dir = Path(video_dir) if video_dir else None
        self.counter_file = CounterFile(Path(state_dir) / f"{cfg.actor_id}.json"
                                        if state_dir else None)
        self.counters: ActorCounters = self.counter_file.load()
        self.counters.env_steps = max(self.counters.env_steps, produced)
        self.key = jax.random.PRNGKey(seed + 104729 * self.counters.episodes)
        self.params = None
        self.weights_at: float | None = None  # when the weights in use arrived (monotonic)
        # a restarted actor keeps its operator schedule
        self.set_takeover_scale(self.counters.takeover_scale)
        # Frames a reward classifier calls success are kept in the run folder for review (no-op
        # without one).
        if state_dir is not None:
            self.controls.set_positives_dir(Path(state_dir).parent / "classifier_positives")

    # ---------- weights ----------
    def _take(self, update) -> None:
        if update is not None:
            version, params = update
            # once per version, not per inference
            self.params = jax.device_put(params)
            self.counters.weights, self.weights_at = version, time.monotonic()

    def wait_for_weights(self, stop: threading.Event | None = None) -> None:
        """Wait for the learner's first weights; TimeoutError after `weights_timeout_s`. A `stop`
        set meanwhile (SIGTERM) ends the wait without weights."""
        deadline = time.monotonic() + self.cfg.weights_timeout_s
        while self.params is None and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return
            self._check_link()
            self._take(self.client.poll() or self.client.wait(0.5))
        if self.params is None:
            raise TimeoutError(f"no policy weights from the learner within "
                               f"{self.cfg.weights_timeout_s} s")

    def _weights_age(self) -> tuple[list[int] | None, float | None]:
        """The weights in use ([incarnation, step]) and their age in seconds, for the dashboard."""
        version, at = self.counters.weights, self.weights_at
        return ([version.incarnation, version.step] if version else None,
                None if at is None else time.monotonic() - at)

    def _check_link(self) -> None:
        if (error := self.link_error()) is not None:
            raise LearnerRefused(f"the learner refused actor {self.cfg.actor_id!r}: {error}")

    def _rate_limited(self) -> bool:
        limit = self.cfg.max_steps_per_update
        if limit is None or self.counters.weights is None:
            return False
        return self.counters.env_steps > self.cfg.free_steps + limit * self.counters.weights.step

    # ---------- the operator's schedule ----------
    def set_takeover_scale(self, scale: float) -> None:
        """Scale the operator device's take-over chance (kept in the counters when the stack has
        a device with a take-over schedule)."""
        if self.controls.set_takeover_scale(scale):
            self.counters.takeover_scale = scale

    # ---------- the loop ----------
    def act(self, obs: dict) -> np.ndarray:
        self.key, sub = jax.random.split(self.key)
        return np.asarray(self.sample(self.params, self.policy_view(obs), sub))

    def run(self, stop: threading.Event) -> ActorCounters:
        """Run episodes until `stop` or the step budget; a started episode is always finished."""
        self.wait_for_weights(stop)
        while not stop.is_set() and not self._budget_spent():
            self._check_link()
            while getattr(self.adder, "full", False) and not stop.is_set():
                log.warning("the actor's spool is full: waiting for the learner before a new "
                            "episode")
                time.sleep(1.0)
            self.run_episode(stop)
            every = self.cfg.eval_every_episodes
            if every and self.counters.episodes % every == 0 and not stop.is_set():
                self.run_evaluation(stop)
        # A stop request exits promptly: what is not acknowledged stays in the spool for the next
        # start.
        if not self.adder.flush(timeout=5.0 if stop.is_set() else self.cfg.flush_timeout_s):
            log.warning("the learner has not acknowledged everything yet; the rest stays in the "
                        "spool and is sent when this actor runs again")
        return self.counters

    def _budget_spent(self) -> bool:
        budget = self.cfg.max_env_steps
        return budget is not None and self.counters.env_steps >= budget

    def run_evaluation(self, stop: threading.Event) -> dict:
        """Episodes with the deterministic policy and no interventions; nothing is added to the
        buffers."""
        self.controls.set_interventions(False)
        wins = 0
        try:
            for episode in range(self.cfg.eval_episodes):
                name = f"eval_{self.counters.env_steps:08d}"
                video = EpisodeVideo(self.env, self.video_dir, name) if episode == 0 else None
                wins += self._evaluation_episode(stop, video)
        finally:
            self.controls.set_interventions(True)
        success = wins / max(1, self.cfg.eval_episodes)
        if self.cfg.takeover_decay:
            self.set_takeover_scale(1.0 - success)
        weights = self.counters.weights
        report = {"eval_success": success, "eval_episodes": self.cfg.eval_episodes,
                  "env_steps": self.counters.env_steps,
                  "policy_step": weights.step if weights else -1}
        self.stats.episode(report)
        return report

    def _evaluation_episode(self, stop: threading.Event, video: EpisodeVideo | None) -> bool:
        obs, info = self.env.reset()
        if self.feed:
            self.feed.reset(self.counters.episodes, True, obs, info)
        done, step, ret = False, 0, 0.0
        while not done and not stop.is_set():
            if video:
                video.capture()
            action = np.asarray(self.evaluate(self.params, self.policy_view(obs)))
            if self.feed:
                self.feed.flush()
            obs, reward, terminated, truncated, info = self.env.step(action)
            done, step, ret = terminated or truncated, step + 1, ret + float(reward)
            if self.feed:
                self.feed.step(step, obs, action, reward, info, self._weights_age())
        if video and video.capture():
            video.write()
        success = bool(info.get("succeed", False))
        if self.feed:
            self.feed.episode_end({"return": ret, "length": step, "success": float(success),
                                   "aborted": float(bool(info.get("aborted", False))),
                                   "env_steps": self.counters.env_steps})
        return success

    def run_episode(self, stop: threading.Event) -> dict:
        episode = self.counter_file.claim_episode(self.counters)
        # an operator wait ends on shutdown
        self.controls.set_operator_stop(stop)
        obs, info = self.env.reset()
        if self.feed:
            self.feed.reset(episode, False, obs, info)
        tracker, done, step = EpisodeTracker(), False, 0
        while not done:
            self._take(self.client.poll())
            if self.feed and self._rate_limited():
                self.feed.flush()  # the page shows where the robot is while the loop waits
            while self._rate_limited() and not stop.is_set():
                time.sleep(0.01)
                self._take(self.client.poll())
            action = self.act(obs)
            if self.feed:
                self.feed.flush()  # the last step's state, while the env waits for its period
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            # False: an abort ended the episode and moved nothing, so no transition happened (the
            # episode's last recorded one stays as it was)
            executed = bool(info.get("executed", True))
            if executed:
                self.adder.add(transition(obs, action, reward, next_obs, terminated, truncated,
                                          info, episode, step, self.counters.weights,
                                          info.get("classifier_version", 0)))
                self.counters.env_steps += 1
            tracker.step(float(reward), bool(info.get("intervened", False)),
                         float(info.get("paused_s", 0.0)), executed)
            obs, step, done = next_obs, step + executed, terminated or truncated
            if self.feed:
                self.feed.step(step, obs, action, reward, info, self._weights_age())
        summary = tracker.summary(episode, info, self.counters.env_steps, self.counters.weights)
        self.stats.episode(summary)
        if self.feed:
            self.feed.episode_end(summary)
        return summary
