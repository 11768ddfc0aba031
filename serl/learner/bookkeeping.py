"""Bookkeeping: checkpoints (with a back-off after a failed write), the resume into a new
incarnation, and the progress file that tells a restart how many updates it redoes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from serl.checkpoints import Checkpointer, LearnerCounters
from serl.faults import KillDuringWrite
from serl.learner.config import LearnerConfig
from serl.learner.publishing import next_incarnation
from serl.run_progress import LearnerProgress

log = logging.getLogger("serl.learner")


class Bookkeeping:
    """`run_dir/checkpoints`, `learner_progress.json` and `resumes.jsonl`."""

    def __init__(self, run_dir: Path, cfg: LearnerConfig, trunk_weights: str):
        self.checkpointer = Checkpointer(Path(run_dir) / "checkpoints", cfg.keep_checkpoints)
        # the frozen trunk's fingerprint: kept with each checkpoint, compared on resume
        self.trunk_weights = trunk_weights
        self.progress = LearnerProgress(run_dir)
        self.retry_s = cfg.disk_retry_s
        # when a checkpoint write last failed (monotonic)
        self._failed_at = -float("inf")

    def latest_step(self) -> int | None:
        return self.checkpointer.latest_step()

    def restore(self, like_agent) -> tuple[object | None, LearnerCounters, int]:
        """(restored agent or None, counters of the new incarnation, updates redone): continue from
        the latest checkpoint (if any) as a new incarnation, recorded before anything is published:
        an incarnation that crashed before its first checkpoint is never reused."""
        recorded = self.progress.read()
        agent, saved = None, LearnerCounters()
        if self.latest_step() is not None:
            agent, saved = self._restore(like_agent)
        incarnation = next_incarnation(saved.incarnation, recorded.get("incarnation"))
        counters = LearnerCounters(updates=saved.updates, incarnation=incarnation,
                                   skipped_updates=saved.skipped_updates,
                                   watermarks=saved.watermarks)
        redone = max(0, recorded.get("updates", 0) - saved.updates)
        self.write_progress(counters)
        self.progress.record_resume(incarnation, saved.updates, redone)
        log.warning("resumed from update %d as incarnation %d; %d updates since that checkpoint "
                    "are redone", saved.updates, incarnation, redone)
        return agent, counters, redone

    def _restore(self, like_agent):
        self.checkpointer.check_trunk(self.latest_step(), self.trunk_weights)
        try:
            return self.checkpointer.restore(like_agent)
        except ValueError as err:
            # orbax names the subtree the checkpoint has and the agent lacks
            if "frozen" not in str(err):
                raise
            raise ValueError(
                f"checkpoint {self.latest_step()} in {self.checkpointer.directory} holds the "
                "frozen trunk inside the agent, as checkpoints did before the trunk left the "
                "trained tree; this version cannot resume it. Start a new run (another --run "
                "name) or evaluate it with the version that wrote it") from None

    def write_progress(self, counters: LearnerCounters, durable: bool = True) -> None:
        self.progress.write(counters.updates, counters.incarnation, durable)

    def checkpoint(self, agent, counters: LearnerCounters, watermarks: Callable[[], dict],
                   on_error: Callable[[str, OSError], None], final: bool = True) -> None:
        """Save a checkpoint of `agent` and `counters` (with the buffers' `watermarks()` and the
        agent's skipped updates); a failed write leaves the previous one loadable and goes to
        `on_error`. A periodic (not `final`) one is skipped for `disk_retry_s` after a failure."""
        if not final and time.monotonic() < self._failed_at + self.retry_s:
            return
        counters.watermarks = watermarks()
        counters.skipped_updates = int(agent.skipped_updates)
        try:
            with KillDuringWrite("during_checkpoint", self.checkpointer.directory,
                                 f"{counters.updates}.orbax-checkpoint-tmp"):
                self.checkpointer.save(agent, counters, self.trunk_weights)
        except OSError as err:
            self._failed_at = time.monotonic()
            return on_error(f"checkpoint at update {counters.updates}", err)
        self.write_progress(counters)

    def close(self) -> None:
        self.checkpointer.close()
