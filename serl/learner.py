"""The learner loop: take transitions from the transport, append them durably (online buffer; intervention steps
also to the demo buffer), acknowledge, sample half online / half demo, update, publish weights, checkpoint.

The loop does not know which transport it has; it only sees `TransitionSource` and `WeightsPublisher`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
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
from serl.faults import KillDuringWrite, fault_point
from serl.monitor import RunMonitor
from serl.networks.observation_encoder import FEATURES_SUFFIX, trunk_feature_fn, trunk_feature_shape
from serl.networks.pretrained import frozen_params_for
from serl.run_progress import LearnerProgress
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
    on_disk_error: str = field(default="continue", metadata=RESUMABLE)  # failed buffer/checkpoint write: "continue"
    # (keep training; unstored batches stay unacknowledged and are retried) or "stop" (stop cleanly, exit non-zero)
    disk_retry_s: float = field(default=5.0, metadata=RESUMABLE)  # seconds between retries of a failed buffer write


class DiskWriteError(RuntimeError):
    """A buffer or checkpoint write failed (disk full, quota, I/O error) and the run is configured to stop."""


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
        if cfg.on_disk_error not in ("continue", "stop"):
            raise ValueError(f"learner.on_disk_error must be 'continue' or 'stop', got {cfg.on_disk_error!r}")
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
        # Actions are in the policy's [-1, 1] scale (DESIGN): anything beyond is rejected at insertion.
        self.online = ReplayStorage(self.run_dir / "buffers" / "online", self.spec, cfg.buffer_capacity,
                                    cfg.buffer_chunk_size, action_limit=1.0, **cache)
        self.demo = ReplayStorage(self.run_dir / "buffers" / "demo", self.spec, cfg.buffer_capacity,
                                  cfg.buffer_chunk_size, action_limit=1.0, **cache)
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", cfg.keep_checkpoints)
        self.progress = LearnerProgress(self.run_dir)
        self.counters = LearnerCounters()
        self.invalid_transitions = 0
        self.redone_updates = 0  # updates done after the restored checkpoint, lost in the crash and redone
        self.disk_errors = 0  # failed buffer or checkpoint writes
        self._checkpoint_failed_at = -float("inf")  # when a checkpoint write last failed (monotonic)
        self._unstored: deque = deque()  # batches whose append failed, in arrival order, retried before new ones
        self._retry_at = 0.0
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
        progress = self.progress.read()
        saved = LearnerCounters()
        if self.checkpointer.latest_step() is not None:
            agent, saved = self.checkpointer.restore(self.agent)
            self.agent = replicate(agent, self.mesh)
        incarnation = max(saved.incarnation, progress.get("incarnation", -1)) + 1
        self.counters = LearnerCounters(updates=saved.updates, incarnation=incarnation,
                                        skipped_updates=saved.skipped_updates, watermarks=saved.watermarks)
        self.redone_updates = max(0, progress.get("updates", 0) - saved.updates)
        self._write_progress()
        self.progress.record_resume(incarnation, saved.updates, self.redone_updates)
        log.warning("resumed from update %d as incarnation %d; %d updates since that checkpoint are redone",
                    saved.updates, incarnation, self.redone_updates)

    def _write_progress(self) -> None:
        self.progress.write(self.counters.updates, self.counters.incarnation)

    # ---------- data ----------
    def ingest(self, timeout: float) -> int:
        """Receive, store durably, acknowledge. Returns the number of batches received.

        A batch whose write fails (disk full) is not acknowledged: it and every later batch are kept, in order, and
        retried every `disk_retry_s` (the actors hold them in their spools meanwhile), or the run stops."""
        if self._unstored and time.monotonic() < self._retry_at:
            return 0  # the disk is still failing: train on what is stored, take nothing new
        batches = [*self._unstored, *self.source.receive(self.cfg.receive_batches, timeout)]
        self._unstored.clear()
        for i, batch in enumerate(batches):
            try:
                self._store(batch)
            except OSError as err:
                self._unstored.extend(batches[i:])
                self._disk_error(f"storing {batch.actor_id}'s transitions {batch.first_sequence}.."
                                 f"{batch.last_sequence}", err)
                self._retry_at = time.monotonic() + self.cfg.disk_retry_s
                break
            fault_point("after_append")
            self.source.acknowledge(batch.actor_id, batch.last_sequence)
        return len(batches)

    def _store(self, batch) -> None:
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

    def _disk_error(self, what: str, err: OSError) -> None:
        """Count and report a failed write; with `on_disk_error="stop"` raise DiskWriteError."""
        self.disk_errors += 1
        latest = self.checkpointer.latest_step()
        message = (f"{what} failed: {err} (errno {err.errno}). Buffers hold everything up to the last stored "
                   f"batch; the latest good checkpoint is update {latest}.")
        if self.cfg.on_disk_error == "stop":
            raise DiskWriteError(message + " Stopping (learner.on_disk_error=stop): free disk space, then --resume.")
        log.error("%s Training continues and retries the write (learner.on_disk_error=continue).", message)

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
            self._write_progress()  # a crash after this loses at most publish_every updates uncounted

    def checkpoint(self, final: bool = True) -> None:
        """Save a checkpoint; a failed write leaves the previous one loadable (see `on_disk_error`). A periodic
        (not `final`) one is skipped for `disk_retry_s` after a failure."""
        if not final and time.monotonic() < self._checkpoint_failed_at + self.cfg.disk_retry_s:
            return
        self.counters.watermarks = self.online.watermarks()
        self.counters.skipped_updates = int(self.agent.skipped_updates)
        try:
            with KillDuringWrite("during_checkpoint", self.checkpointer.directory,
                                 f"{self.counters.updates}.orbax-checkpoint-tmp"):
                self.checkpointer.save(self.agent, self.counters)
        except OSError as err:
            self._checkpoint_failed_at = time.monotonic()
            return self._disk_error(f"checkpoint at update {self.counters.updates}", err)
        self._write_progress()

    def run(self, stop: threading.Event) -> LearnerCounters:
        """Train until `stop` is set or `max_updates` is reached; always ends with a checkpoint."""
        cfg = self.cfg
        self.publish()  # actors start acting with the current weights at once
        start, start_updates = time.monotonic(), self.counters.updates
        self._deadline = None if cfg.max_minutes is None else start + 60.0 * cfg.max_minutes
        failed = True
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
                    self.checkpoint(final=False)
            failed = False
        finally:
            if self._prefetch is not None:
                self._prefetch.close()
            try:
                self.checkpoint()
            except DiskWriteError as err:
                if not failed:
                    raise
                log.error("the final checkpoint failed too: %s", err)  # the first error is the one raised
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
        try:
            self.monitor.observe(reports)
        except OSError as err:  # its history file on a full disk
            self._disk_error("recording evaluation history", err)
        for r in reports:
            prefix = "eval" if "eval_success" in r else "actor"
            self._scalars(int(r.get("env_steps", 0)), {f"{prefix}/{k}": float(v) for k, v in r.items()
                                                             if isinstance(v, (int, float, bool))})
        version = f"{self.counters.incarnation}:{self.counters.updates}"
        self.monitor.maybe_print(self._updates_per_s, version)

    def _log(self, info: dict) -> None:
        scalars = {f"learner/{k}": float(v) for k, v in jax.device_get(info).items()}
        scalars.update({"learner/updates_per_s": self._updates_per_s, "buffer/online": self.online.size,
                        "buffer/demo": self.demo.size, "learner/skipped_updates": int(self.agent.skipped_updates),
                        "learner/invalid_transitions": self.invalid_transitions})
        self._scalars(self.counters.updates, scalars)
        self._write_progress()

    def _scalars(self, step: int, scalars: dict) -> None:
        try:
            self.writer.write(step, scalars)
        except OSError as err:  # its writer thread died on a full disk: report, then start a new event file
            self._disk_error("writing TensorBoard scalars", err)
            try:
                self.writer = ScalarWriter(self.run_dir / "tensorboard" / "learner")
            except OSError:
                pass  # tried again at the next scalars

    def close(self) -> None:
        try:
            self.writer.close()
        except OSError as err:
            log.error("TensorBoard scalars not flushed: %s", err)
        self.checkpointer.close()
        self.online.close()
        self.demo.close()

