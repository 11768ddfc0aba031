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
    # warm start from this policy file (`serl train-bc`, trained with this run's agent config): the
    # policy starts as it; a fresh run first pre-trains the critics on the demos. "": none
    warm_start: str = ""
    # critic-only updates on the demos before the first online one (warm start only)
    warm_start_critic_updates: int = 500
    # the first this many online updates train the critics only: the policy stays the starting
    # one (a residual's correction zero, so the base acts alone; a warm start's the file's), and
    # the critics learn its values from its own episodes before the actor follows them
    policy_hold_updates: int = 0
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
    # share of each minibatch from the prior buffer (unlabelled episodes rewarded by the reward
    # classifier at start, `serl.learner.prior`), in [0, 1); the online/demo halves split the rest.
    # 0: no prior buffer, not even opened. (The prior fields are resumable: a resume loads only
    # files not yet in the prior buffer, and a run recorded before they existed still resumes.)
    prior_fraction: float = resumable(0.0)
    # prior transitions before batches take `prior_fraction` from the prior buffer
    min_prior: int = resumable(50)
    # prior episode files (`serl import-demos DATASET TASK --prior`); None: demos_dir + "-prior"
    prior_dir: str | None = resumable(None)
    # classifier folder that rewards the prior episodes; None: reward.classifier_dir
    prior_classifier_dir: str | None = resumable(None)

    def __post_init__(self) -> None:
        if not 0.0 <= self.prior_fraction < 1.0:  # (NaN fails too)
            raise ValueError(f"learner.prior_fraction {self.prior_fraction} must be in [0, 1): "
                             "the share of each batch drawn from the prior buffer (the online "
                             "and demo halves share the rest); 0 turns prior data off")
        if self.min_prior < 1:
            raise ValueError(f"learner.min_prior {self.min_prior} must be at least 1")
        if self.policy_hold_updates < 0 or self.warm_start_critic_updates < 0:
            raise ValueError(f"learner.policy_hold_updates ({self.policy_hold_updates}) and "
                             f"learner.warm_start_critic_updates ({self.warm_start_critic_updates})"
                             " must be at least 0")


class DiskWriteError(RuntimeError):
    """A buffer or checkpoint write failed (disk full, quota, I/O error) and the run is configured
    to stop."""


class ListenError(RuntimeError):
    """The learner's transport cannot listen on its ports (another learner is running there)."""
