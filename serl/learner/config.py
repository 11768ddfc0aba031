"""The learner's configuration and its errors, importable without jax, flax or orbax."""

from __future__ import annotations

from dataclasses import dataclass, field

from serl.learner.wandb_config import WandbConfig
from serl.resumable import resumable


@dataclass(frozen=True)
class LearnerConfig:
    # newest transitions sampled from, per buffer (stored on disk, not in RAM)
    buffer_capacity: int = 200_000
    # transitions per chunk file
    buffer_chunk_size: int = 1024
    # online transitions before updates start
    min_online: int = 200
    # demo transitions before batches take half from the demo buffer (all online until then)
    min_demo: int = 50
    # updates between weight publications
    publish_every: int = resumable(10)
    # updates between checkpoints
    checkpoint_every: int = resumable(500)
    # updates between TensorBoard scalars
    log_every: int = resumable(50)
    # at most this many updates per online transition received (the update-to-data ratio a recipe
    # was measured at, on any machine); None: as many as the hardware allows
    max_updates_per_step: float | None = resumable(None)
    # stop after this many updates in total
    max_updates: int | None = resumable(None)
    # stop after this long (this process)
    max_minutes: float | None = resumable(None)
    # stop once evaluation reaches it
    target_eval_success: float | None = resumable(None)
    # seconds between progress lines
    progress_every_s: float = resumable(10.0)
    # most incoming batches drained per loop iteration
    receive_batches: int = 64
    # batches sampled ahead on a background thread
    prefetch: int = 2
    # checkpoints kept on disk
    keep_checkpoints: int = 3
    # failed buffer/checkpoint write: "continue" (keep training; unstored batches stay
    # unacknowledged and are retried) or "stop" (stop cleanly, exit non-zero)
    on_disk_error: str = resumable("continue")
    # seconds between retries of a failed buffer write
    disk_retry_s: float = resumable(5.0)
    # Weights & Biases beside TensorBoard (off by default; `--learner.wandb.enabled`)
    wandb: WandbConfig = field(default_factory=WandbConfig)


class DiskWriteError(RuntimeError):
    """A buffer or checkpoint write failed (disk full, quota, I/O error) and the run is configured
    to stop."""


class ListenError(RuntimeError):
    """The learner's transport cannot listen on its ports (another learner is running there)."""
