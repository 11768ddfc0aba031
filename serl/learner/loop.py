"""The learner loop: take transitions from the transport, append them durably (online buffer;
intervention steps also to the demo buffer), acknowledge, sample half online / half demo, update,
publish weights, checkpoint. Each part is timed (`serl.learner.timing`): the share of wall time
outside `update` is in the progress line and TensorBoard.

The loop does not know which transport it has; it only sees `TransitionSource` and
`WeightsPublisher`. Each part lives in its own module (see `serl.learner`); `Learner` composes them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from serl.agents.config import SACConfig
from serl.checkpoints import LearnerCounters
from serl.data import TransitionSpec
from serl.learner.bookkeeping import Bookkeeping
from serl.learner.config import DiskWriteError, LearnerConfig
from serl.learner.intake import DiskErrors, Intake
from serl.learner.prior import PriorSource, require_classifier
from serl.learner.publishing import WeightsOut, version_label
from serl.learner.reporting import Reporting
from serl.learner.status import StatusOut
from serl.learner.timing import LoopClock
from serl.learner.training import Training
from serl.networks.trunk import trunk_fingerprint
from serl.transport.interfaces import StatusPublisher, TransitionSource, WeightsPublisher

log = logging.getLogger("serl.learner")


class Learner:
    """Owns the run's buffers, agent, checkpoints and logs under `run_dir`. With
    `cfg.prior_fraction` > 0, `prior` (`PriorSource.of(config)`) names the prior episodes and the
    classifier that rewards them (`serl.learner.prior`). `status` receives the learner's status
    every second (the actors' dashboards show it). `base` (a `FileBasePolicy`) gives demos recorded
    without it their base actions. `warm_start` (a policy file's `policy_params()`) starts the
    policy of a run without a checkpoint as it, and its critics are pre-trained on the demos
    before the first online update."""

    def __init__(self, agent_cfg: SACConfig, cfg: LearnerConfig, observation_space, action_space,
                 run_dir: Path, source: TransitionSource, publisher: WeightsPublisher,
                 seed: int = 0, resume: bool = False, demos_dir: str | Path | None = None,
                 prior: PriorSource | None = None, status: StatusPublisher | None = None,
                 base=None, warm_start: dict | None = None):
        if cfg.prior_fraction > 0:  # refused before anything is opened
            require_classifier(prior, cfg.prior_fraction)
        self.disk = DiskErrors(cfg.on_disk_error, lambda: self.records.latest_step())
        self.cfg, self.agent_cfg, self.run_dir = cfg, agent_cfg, Path(run_dir)
        self.source = source
        self.spec = TransitionSpec.from_spaces(observation_space, action_space)
        # where the loop's wall time goes, from its first update on
        self.clock = LoopClock()
        self.training = Training(agent_cfg, cfg, observation_space, self.spec.action_dim, seed,
                                 self.clock)
        self.intake = Intake(source, self.spec, cfg, self.run_dir, self.disk,
                             self.training.storage_options)
        self.records = Bookkeeping(self.run_dir, cfg, trunk_fingerprint(agent_cfg.encoder))
        self.weights = WeightsOut(publisher)
        self.status = StatusOut(status)
        self.counters = LearnerCounters()
        # updates done after the restored checkpoint, lost in the crash and redone
        self.redone_updates = 0
        restored = None
        if resume:
            restored, self.counters, self.redone_updates = self.records.restore(self.agent)
            if restored is not None:
                self.training.restored(restored)
        self.base = base
        # a run with a checkpoint has its own weights; one without (fresh, or resumed after a
        # crash before its first checkpoint) starts as the file's policy
        self._pretrain = warm_start is not None and restored is None
        if self._pretrain:
            self.training.warm_start(warm_start)
        if demos_dir is not None:
            self.load_demos(Path(demos_dir))
        if self.intake.prior is not None:
            try:
                self.intake.load_prior(prior)
            except BaseException:  # a refused prior folder leaves no buffer locked
                self.intake.close()
                raise
        self.reporting = Reporting(self.run_dir, cfg, self.disk.report, self.clock)
        self.rng = np.random.default_rng(seed + 7919 * self.counters.incarnation)
        self._deadline: float | None = None

    # ---------- the parts' state, by its old names ----------
    @property
    def agent(self):
        return self.training.agent

    @property
    def online(self):
        return self.intake.online

    @property
    def demo(self):
        return self.intake.demo

    @property
    def monitor(self):
        return self.reporting.monitor

    @property
    def invalid_transitions(self) -> int:
        return self.intake.invalid_transitions

    @property
    def disk_errors(self) -> int:
        """Failed buffer, checkpoint or log writes."""
        return self.disk.count

    # ---------- what callers use ----------
    def load_demos(self, folder: Path) -> int:
        """Append every demo file to the demo buffer (see `Intake.load_demos`)."""
        return self.intake.load_demos(Path(folder), self.base)

    def ingest(self, timeout: float) -> int:
        """Receive, store durably, acknowledge; the number of batches received (`Intake.ingest`)."""
        return self.intake.ingest(timeout)

    def ready(self) -> bool:
        return self.online.size >= self.cfg.min_online

    def may_update(self) -> bool:
        """Ready, and not ahead of the data: with `max_updates_per_step`, updates so far stay
        within that many per online transition received (both counted over the whole run)."""
        ratio = self.cfg.max_updates_per_step
        return self.ready() and (ratio is None or self.counters.updates < ratio * len(self.online))

    def publish(self) -> None:
        """Publish the policy weights, unless this version was already published."""
        c = self.counters
        if self.weights.publish(c.incarnation, c.updates, self.training.policy_params):
            # a crash after this loses at most publish_every updates uncounted
            self.records.write_progress(c, durable=False)

    def checkpoint(self, final: bool = True) -> None:
        """Save a checkpoint; a failed write leaves the previous one loadable (see
        `on_disk_error`). A periodic (not `final`) one is skipped for `disk_retry_s` after a
        failure."""
        self.records.checkpoint(self.agent, self.counters, self.online.watermarks,
                                self.disk.report, final)

    def observe_actors(self) -> None:
        """Take the actors' reports into the monitor and TensorBoard; print progress when due."""
        version = version_label(self.counters.incarnation, self.counters.updates)
        self.reporting.observe_actors(self.source.stats(), version)
        self.status.maybe_publish(self, self.reporting.updates_per_s, self.weights.published)

    def run(self, stop: threading.Event) -> LearnerCounters:
        """Train until `stop` is set or a budget is spent; always ends with a checkpoint."""
        cfg = self.cfg
        self.publish()  # actors start acting with the current weights at once
        start, start_updates = time.monotonic(), self.counters.updates
        self._deadline = None if cfg.max_minutes is None else start + 60.0 * cfg.max_minutes
        failed = True
        try:
            if self._pretrain:  # the policy is held: the weights published stay valid
                self.pretrain_critic(stop)
            clock = self.clock
            while not stop.is_set() and not self._budget_spent():
                may_update = self.may_update()
                with clock.phase("intake" if may_update else "data_wait"):
                    self.ingest(timeout=0.0 if may_update else 0.05)
                with clock.phase("actors"):
                    self.observe_actors()
                if not self.may_update():
                    continue
                # its own phases: "sampling" and "update"
                hold = self.counters.updates < cfg.policy_hold_updates
                info = self.training.update(self.online, self.demo, self.rng, self.intake.prior,
                                            hold_policy=hold)
                self.counters.updates += 1
                u = self.counters.updates
                if u == start_updates + 1:
                    clock.start()  # the first update compiled: count from here
                with clock.phase("publishing"):
                    if u % cfg.publish_every == 0:
                        self.publish()
                with clock.phase("bookkeeping"):
                    if u % cfg.log_every == 0:
                        elapsed = max(1e-9, time.monotonic() - start)
                        self.reporting.updates_per_s = (u - start_updates) / elapsed
                        self._log(info)
                    if u % cfg.checkpoint_every == 0:
                        self.checkpoint(final=False)
            failed = False
        finally:
            self.training.stop()
            try:
                self.checkpoint()
            except DiskWriteError as err:
                if not failed:
                    raise
                # the first error is the one raised
                log.error("the final checkpoint failed too: %s", err)
            self.publish()
        return self.counters

    def pretrain_critic(self, stop: threading.Event | None = None) -> None:
        """The warm start's critic pre-training on the demo buffer, before the first online
        update (the actors act meanwhile with the starting policy, which it holds)."""
        self._pretrain, n, start = False, self.cfg.warm_start_critic_updates, time.monotonic()
        if n <= 0 or self.demo.size < self.agent_cfg.batch_size:
            log.warning("warm start without critic pre-training (%d demo transitions, %d updates "
                        "asked)", self.demo.size, n)
            return
        info = self.training.pretrain_critic(self.demo, n, self.rng, stop)
        log.info("warm start: pre-trained the critics for %d updates on %d demo transitions in "
                 "%.1f s (critic loss %.4f, q %.3f)", n, self.demo.size, time.monotonic() - start,
                 float(info.get("critic_loss", float("nan"))), float(info.get("q", float("nan"))))

    def _budget_spent(self) -> bool:
        if self.monitor.target_reached():
            log.warning("evaluation success reached the target %.2f over the last %d evaluations: "
                        "stopping", self.cfg.target_eval_success, self.monitor.target_window)
            return True
        if self._deadline is not None and time.monotonic() >= self._deadline:
            log.warning("the %.1f-minute budget is spent: stopping", self.cfg.max_minutes)
            return True
        return self.cfg.max_updates is not None and self.counters.updates >= self.cfg.max_updates

    def _log(self, info: dict) -> None:
        extra = {"buffer/online": self.online.size, "buffer/demo": self.demo.size,
                 "learner/skipped_updates": self.training.skipped_updates,
                 "learner/invalid_transitions": self.invalid_transitions}
        if (shares := self.clock.window("scalars")) is not None:
            extra.update(shares.scalars())
        self.reporting.log_update(self.counters.updates, info, extra)
        self.records.write_progress(self.counters, durable=False)

    def close(self) -> None:
        self.reporting.close()
        self.records.close()
        self.intake.close()
