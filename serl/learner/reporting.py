"""Reporting: what the actors say (episodes, evaluations) into the run monitor and TensorBoard,
the learner's own scalars, and the live progress line (the monitor's, with the share of wall time
spent outside `update` since the previous line). A failed write here (full disk) is a disk error
like any other: reported, never fatal unless the policy says stop. With `learner.wandb.enabled`
the same scalars, the evaluation videos and the resolved config go to Weights & Biases too
(`serl.learner.wandb_sink`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import jax

from serl.learner.config import LearnerConfig
from serl.learner.timing import LoopClock
from serl.learner.wandb_sink import ENV_STEPS, UPDATE, WandbSink
from serl.monitor import RunMonitor
from serl.scalar_log import ScalarWriter

log = logging.getLogger("serl.learner")


def actor_scalars(report: dict) -> dict[str, float]:
    """An actor's report as TensorBoard scalars, under `eval/` or `actor/`."""
    prefix = "eval" if "eval_success" in report else "actor"
    return {f"{prefix}/{k}": float(v) for k, v in report.items()
            if isinstance(v, (int, float, bool))}


class Reporting:
    """`run_dir/tensorboard/learner`, the monitor's history and curve, the progress line, and
    the W&B run when switched on (`WandbUnavailable` here when it cannot be)."""

    def __init__(self, run_dir: Path, cfg: LearnerConfig,
                 on_error: Callable[[str, OSError], None], clock: LoopClock | None = None):
        # first: a switch that cannot work stops the start before any writer opens
        self.wandb = WandbSink(cfg.wandb, run_dir, cfg) if cfg.wandb.enabled else None
        self.directory = Path(run_dir) / "tensorboard" / "learner"
        self.on_error = on_error
        self.writer = ScalarWriter(self.directory)
        self.monitor = RunMonitor(run_dir, cfg.target_eval_success, cfg.progress_every_s)
        self.clock = clock or LoopClock()
        self.updates_per_s = 0.0
        self._printed_at = -float("inf")

    def observe_actors(self, reports: list[dict], version: str) -> None:
        """Record the actors' reports, then print the progress line when it is due."""
        try:
            self.monitor.observe(reports)
        except OSError as err:
            # its history file on a full disk
            self.on_error("recording evaluation history", err)
        for r in reports:
            self.scalars(int(r.get("env_steps", 0)), actor_scalars(r), ENV_STEPS)
        if self.wandb is not None and any("eval_success" in r for r in reports):
            # an actor sharing the run folder wrote the evaluation's video before reporting it
            self.wandb.log_new_videos()
        if time.monotonic() - self._printed_at >= self.monitor.progress_every_s:
            self._printed_at = time.monotonic()
            print(self.progress_line(version), flush=True)

    def progress_line(self, version: str) -> str:
        """The monitor's line and where the learner's time went since the previous line."""
        shares = self.clock.window("line")
        timing = shares.summary() if shares is not None and shares.updates else "outside update -"
        return f"{self.monitor.progress_line(self.updates_per_s, version)} | {timing}"

    def log_update(self, step: int, info: dict, extra: dict[str, float]) -> None:
        """The update's info (on the device) and `extra` figures as `learner/...` scalars."""
        scalars = {f"learner/{k}": float(v) for k, v in jax.device_get(info).items()}
        scalars.update({"learner/updates_per_s": self.updates_per_s, **extra})
        self.scalars(step, scalars)

    def scalars(self, step: int, scalars: dict, axis: str = UPDATE) -> None:
        """Scalars at `step` of `axis` (the learner's updates, or the actors' env steps)."""
        if self.wandb is not None:
            self.wandb.log(axis, step, scalars)
        try:
            self.writer.write(step, scalars)
        except OSError as err:
            # its writer thread died on a full disk: report, then start a new event file
            self.on_error("writing TensorBoard scalars", err)
            try:
                self.writer = ScalarWriter(self.directory)
            except OSError:
                pass  # tried again at the next scalars

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.close()
        try:
            self.writer.close()
        except OSError as err:
            log.error("TensorBoard scalars not flushed: %s", err)
