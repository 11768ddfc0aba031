"""The behaviour-cloning configuration (`serl train-bc`), importable without jax or flax: task
configs and `serl SUB --help` load it.

Every field is resumable: BC settings never change a `serl train` run (a run on a base policy names
the policy file, whose identity it pins), so a run recorded before this section existed resumes."""

from __future__ import annotations

from dataclasses import dataclass

from serl.resumable import resumable


@dataclass(frozen=True)
class BCConfig:
    # MLP widths of the arm head and the gripper head; None: the task agent's (agent.hidden_dims),
    # so the weights drop into the RL agent's actor and grasp critic unchanged (a warm start)
    hidden_dims: tuple[int, ...] | None = resumable(None)
    # gradient updates
    steps: int = resumable(2000)
    # transitions per update, drawn uniformly from the training episodes
    batch_size: int = resumable(256)
    # Adam, encoder and heads
    learning_rate: float = resumable(3e-4)
    # weight of the gripper's 3-way cross-entropy against the arm's mean squared error
    gripper_weight: float = resumable(1.0)
    # share of demonstration episodes held out for the action-error report (whole episodes)
    validation_fraction: float = resumable(0.2)
    # initialisation, batches and the episode split
    seed: int = resumable(0)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"bc.steps ({self.steps}) and bc.batch_size ({self.batch_size}) must "
                             "be at least 1")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"bc.validation_fraction {self.validation_fraction} must be in (0, 1)")
        if self.hidden_dims is not None and (not self.hidden_dims or min(self.hidden_dims) < 1):
            raise ValueError(f"bc.hidden_dims {self.hidden_dims} must name positive widths")
        if self.gripper_weight < 0:
            raise ValueError(f"bc.gripper_weight {self.gripper_weight} must be >= 0")
