"""The learner loop: take transitions from the transport, append them durably (online buffer; intervention steps
also to the demo buffer), acknowledge, sample half online / half demo, update, publish weights, checkpoint.

The loop does not know which transport it has; it only sees `TransitionSource` and `WeightsPublisher`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from serl.agents.factory import example_observation, make_agent
from serl.agents.sac import SACConfig
from serl.agents.sharding import make_mesh, replicate, shard_batch
from serl.checkpoints import Checkpointer, LearnerCounters
from serl.data import PrefetchIterator, ReplayStorage, TransitionSpec, sample_mixed
from serl.data.demos import load_demos
from serl.monitor import RunMonitor
from serl.networks.observation_encoder import FEATURES_SUFFIX, trunk_feature_fn, trunk_feature_shape
from serl.networks.pretrained import frozen_params_for
from serl.scalar_log import ScalarWriter
from serl.transport.interfaces import TransitionSource, WeightsPublisher, WeightsVersion

log = logging.getLogger("serl.learner")
RESUMABLE = {"resumable": True}


@dataclass(frozen=True)
class LearnerConfig:
    buffer_capacity: int = 200_000  # newest transitions sampled from, per buffer (stored on disk, not in RAM)
    buffer_chunk_size: int = 1024  # transitions per chunk file
    min_online: int = 200  # online transitions before updates start
    min_demo: int = 50  # demo transitions before batches take half from the demo buffer (all online until then)
    publish_every: int = field(default=10, metadata=RESUMABLE)  # updates between weight publications
    checkpoint_every: int = field(default=500, metadata=RESUMABLE)  # updates between checkpoints
    log_every: int = field(default=50, metadata=RESUMABLE)  # updates between TensorBoard scalars
    max_updates: int | None = field(default=None, metadata=RESUMABLE)  # stop after this many updates in total
    max_minutes: float | None = field(default=None, metadata=RESUMABLE)  # stop after this long (this process)
    target_eval_success: float | None = field(default=None, metadata=RESUMABLE)  # stop once evaluation reaches it
    progress_every_s: float = field(default=10.0, metadata=RESUMABLE)  # seconds between progress lines
    receive_batches: int = 64  # most incoming batches drained per loop iteration
    prefetch: int = 2  # batches sampled ahead on a background thread
    keep_checkpoints: int = 3  # checkpoints kept on disk


_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Chaos-test hook: with SERL_FAULT=`name`:N in the environment the process SIGKILLs itself the Nth time it
    passes this point (e.g. between a batch's durable append and its acknowledgement). A no-op otherwise."""
    spec = os.environ.get("SERL_FAULT", "")
    if not spec.startswith(name + ":"):
        return
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] >= int(spec.split(":", 1)[1]):
        os.kill(os.getpid(), signal.SIGKILL)


def _intervened(transition) -> bool:
    try:
        return bool(np.asarray(transition["intervened"]).reshape(()))
    except (KeyError, TypeError, ValueError):
        return False  # malformed: the online buffer's validation counts and drops it


class Learner:
    """Owns the run's buffers, agent, checkpoints and logs under `run_dir`."""

    def __init__(self, agent_cfg: SACConfig, cfg: LearnerConfig, observation_space, action_space, run_dir: Path,
                 source: TransitionSource, publisher: WeightsPublisher, seed: int = 0, resume: bool = False,
                 demos_dir: str | Path | None = None):
        self.cfg, self.agent_cfg, self.run_dir = cfg, agent_cfg, Path(run_dir)
        self.source, self.publisher = source, publisher
        self.spec = TransitionSpec.from_spaces(observation_space, action_space)
        self.mesh = make_mesh()
        if agent_cfg.batch_size % self.mesh.devices.size:
            raise ValueError(f"agent.batch_size {agent_cfg.batch_size} must be divisible by the "
                             f"{self.mesh.devices.size} devices the update is split over")
        agent = make_agent(agent_cfg, example_observation(observation_space), self.spec.action_dim, seed,
                           frozen_params_for(agent_cfg.encoder))
        self.agent = replicate(agent, self.mesh)
        cache = self._feature_cache(agent, observation_space)
        self.online = ReplayStorage(self.run_dir / "buffers" / "online", self.spec, cfg.buffer_capacity,
                                    cfg.buffer_chunk_size, **cache)
        self.demo = ReplayStorage(self.run_dir / "buffers" / "demo", self.spec, cfg.buffer_capacity,
                                  cfg.buffer_chunk_size, **cache)
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", cfg.keep_checkpoints)
        self.counters = LearnerCounters()
        self.invalid_transitions = 0
        self.redone_updates = 0  # updates done after the restored checkpoint, lost in the crash and redone
        if resume:
            self._restore()
        if demos_dir is not None:
            self.load_demos(Path(demos_dir))
        self.writer = ScalarWriter(self.run_dir / "tensorboard" / "learner")
        self.monitor = RunMonitor(self.run_dir, cfg.target_eval_success, cfg.progress_every_s)
        self._updates_per_s = 0.0
        self.rng = np.random.default_rng(seed + 7919 * self.counters.incarnation)
        self._prefetch: PrefetchIterator | None = None
        self._published: WeightsVersion | None = None
        self._deadline: float | None = None

    def _feature_cache(self, agent, observation_space) -> dict:
        """Storage options for the frozen-trunk feature cache (computed once per frame at insertion)."""
        enc = self.agent_cfg.encoder
        if not enc.feature_cache:
            return {}
        frozen = agent.frozen if hasattr(agent, "frozen") else agent.sac.frozen
        features = {k + FEATURES_SUFFIX: (trunk_feature_shape(enc, observation_space[k].shape), np.float16)
                    for k in enc.image_keys}
        return {"features": features, "feature_fn": trunk_feature_fn(frozen, enc), "drop_images_in_samples": True}

    def load_demos(self, folder: Path) -> int:
        """Append every demo file to the demo buffer, each as its own source: reloading (on resume) adds nothing
        twice. A corrupt or foreign file is reported by name and skipped."""
        episodes, problems = load_demos(folder, self.spec)
        for problem in problems:
            log.warning("skipped a demo file: %s", problem)
        added = sum(self.demo.append(batch, f"demo:{name}", 0).appended for name, batch in episodes.items())
        log.info("demo buffer: %d transitions from %d files in %s (%d new)", len(self.demo), len(episodes),
                 folder, added)
        return added

    # ---------- resume ----------
    def _restore(self) -> None:
        """Continue from the latest checkpoint (if any) as a new incarnation, recorded before anything is
        published: an incarnation that crashed before its first checkpoint is never reused."""
        progress = self._read_progress()
        saved = LearnerCounters()
        if self.checkpointer.latest_step() is not None:
            agent, saved = self.checkpointer.restore(self.agent)
            self.agent = replicate(agent, self.mesh)
        incarnation = max(saved.incarnation, progress.get("incarnation", -1)) + 1
        self.counters = LearnerCounters(updates=saved.updates, incarnation=incarnation,
                                        skipped_updates=saved.skipped_updates, watermarks=saved.watermarks)
        self.redone_updates = max(0, progress.get("updates", 0) - saved.updates)
        self._write_progress()
        log.warning("resumed from update %d as incarnation %d; %d updates since that checkpoint are redone",
                    saved.updates, incarnation, self.redone_updates)

    def _progress_path(self) -> Path:
        return self.run_dir / "learner_progress.json"

    def _read_progress(self) -> dict:
        try:
            progress = json.loads(self._progress_path().read_text())
            return {"updates": int(progress["updates"]), "incarnation": int(progress["incarnation"])}
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return {}

    def _write_progress(self) -> None:
        tmp = self._progress_path().with_suffix(".tmp")
        tmp.write_text(json.dumps({"updates": self.counters.updates, "incarnation": self.counters.incarnation}))
        tmp.replace(self._progress_path())

    # ---------- data ----------
    def ingest(self, timeout: float) -> int:
        """Receive, store durably, acknowledge. Returns the number of batches received."""
        batches = self.source.receive(self.cfg.receive_batches, timeout)
        for batch in batches:
            # A list, not a stacked batch: the storage validates each transition and drops only the bad ones.
            result = self.online.append(batch.transitions, batch.actor_id, batch.first_sequence, on_invalid="drop")
            if result.invalid:
                self.invalid_transitions += result.invalid
                log.warning("dropped %d invalid transitions from %s: %s", result.invalid, batch.actor_id,
                            result.first_error)
            intervened = np.array([_intervened(t) for t in batch.transitions], bool)
            if intervened.any():  # intervention steps go to the demo buffer too; its watermark covers the batch
                self.demo.append(batch.transitions, batch.actor_id, batch.first_sequence, on_invalid="drop",
                                 keep=intervened)
            fault_point("after_append")
            self.source.acknowledge(batch.actor_id, batch.last_sequence)
        return len(batches)

    def ready(self) -> bool:
        return self.online.size >= self.cfg.min_online

    def _sample(self) -> dict:
        """critic_actor_ratio minibatches stacked on a leading axis, each half online and half demo."""
        size = self.agent_cfg.batch_size
        if self.demo.size >= self.cfg.min_demo:
            draw = lambda: sample_mixed(self.online, self.demo, size, self.rng)  # noqa: E731
        else:
            draw = lambda: self.online.sample(size, self.rng)  # noqa: E731
        fields = ("observations", "next_observations", "actions", "rewards", "masks", "grasp_penalty")
        minibatches = [draw() for _ in range(self.agent_cfg.critic_actor_ratio)]
        return jax.tree.map(lambda *xs: np.stack(xs), *[{f: mb[f] for f in fields} for mb in minibatches])

    # ---------- the loop ----------
    def publish(self) -> None:
        """Publish the policy weights, unless this version was already published."""
        version = WeightsVersion(self.counters.incarnation, self.counters.updates)
        if version != self._published:
            self.publisher.publish(version, jax.device_get(self.agent.policy_params()))
            self._published = version

    def checkpoint(self) -> None:
        self.counters.watermarks = self.online.watermarks()
        self.counters.skipped_updates = int(self.agent.skipped_updates)
        self.checkpointer.save(self.agent, self.counters)
        self._write_progress()

    def run(self, stop: threading.Event) -> LearnerCounters:
        """Train until `stop` is set or `max_updates` is reached; always ends with a checkpoint."""
        cfg = self.cfg
        self.publish()  # actors start acting with the current weights at once
        start, start_updates = time.monotonic(), self.counters.updates
        self._deadline = None if cfg.max_minutes is None else start + 60.0 * cfg.max_minutes
        try:
            while not stop.is_set() and not self._budget_spent():
                self.ingest(timeout=0.0 if self.ready() else 0.05)
                self._observe_actors()
                if not self.ready():
                    continue
                if self._prefetch is None:
                    self._prefetch = PrefetchIterator(self._sample, lambda b: shard_batch(b, self.mesh),
                                                      depth=cfg.prefetch)
                self.agent, info = self.agent.update(next(self._prefetch))
                self.counters.updates += 1
                u = self.counters.updates
                if u % cfg.publish_every == 0:
                    self.publish()
                if u % cfg.log_every == 0:
                    self._updates_per_s = (u - start_updates) / max(1e-9, time.monotonic() - start)
                    self._log(info)
                if u % cfg.checkpoint_every == 0:
                    self.checkpoint()
        finally:
            if self._prefetch is not None:
                self._prefetch.close()
            self.checkpoint()
            self.publish()
        return self.counters

    def _budget_spent(self) -> bool:
        if self.monitor.target_reached():
            log.warning("evaluation success reached the target %.2f over the last %d evaluations: stopping",
                        self.cfg.target_eval_success, self.monitor.target_window)
            return True
        if self._deadline is not None and time.monotonic() >= self._deadline:
            log.warning("the %.1f-minute budget is spent: stopping", self.cfg.max_minutes)
            return True
        return self.cfg.max_updates is not None and self.counters.updates >= self.cfg.max_updates

    def _observe_actors(self) -> None:
        reports = self.source.stats()
        self.monitor.observe(reports)
        for r in reports:
            prefix = "eval" if "eval_success" in r else "actor"
            self.writer.write(int(r.get("env_steps", 0)), {f"{prefix}/{k}": float(v) for k, v in r.items()
                                                             if isinstance(v, (int, float, bool))})
        version = f"{self.counters.incarnation}:{self.counters.updates}"
        self.monitor.maybe_print(self._updates_per_s, version)

    def _log(self, info: dict) -> None:
        scalars = {f"learner/{k}": float(v) for k, v in jax.device_get(info).items()}
        scalars.update({"learner/updates_per_s": self._updates_per_s, "buffer/online": self.online.size,
                        "buffer/demo": self.demo.size, "learner/skipped_updates": int(self.agent.skipped_updates),
                        "learner/invalid_transitions": self.invalid_transitions})
        self.writer.write(self.counters.updates, scalars)
        self._write_progress()

    def close(self) -> None:
        self.writer.close()
        self.checkpointer.close()
        self.online.close()
        self.demo.close()

