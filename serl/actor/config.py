"""The actor's configuration and its one error, importable without jax, flax, orbax or mujoco."""

from __future__ import annotations

from dataclasses import dataclass

from serl.resumable import resumable
from serl.transport.config import DEFAULT_ACTOR_ID


@dataclass(frozen=True)
class ActorConfig:
    # stable across restarts: the learner keeps its watermark under this id (with CURVE, the
    # actor's key must be named after it: `serl keys generate DIR --actor ID`)
    actor_id: str = DEFAULT_ACTOR_ID
    # stop after this many steps in total
    max_env_steps: int | None = resumable(None)
    # rate limit: env steps allowed per learner update (None: none)
    max_steps_per_update: float | None = None
    # steps allowed before the rate limit applies (fills the learner's minimum)
    free_steps: int = 500
    # start-up: how long to wait for the learner's first weights
    weights_timeout_s: float = 120.0
    # at the end: how long to wait for the learner to acknowledge everything
    flush_timeout_s: float = 120.0
    # training episodes between evaluations; 0: none
    eval_every_episodes: int = resumable(10)
    # episodes per evaluation (no interventions)
    eval_episodes: int = resumable(10)
    # scale the scripted operator's take-over chance by (1 - evaluation success)
    takeover_decay: bool = True


class LearnerRefused(RuntimeError):
    """The learner refused this actor (spec or config mismatch); acting on would be wasted."""


class MissingKey(RuntimeError):
    """`transport.curve_keys` holds no key pair named after this actor's id."""
