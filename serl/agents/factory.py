"""Which agent a config asks for, and the pure policy functions the actor runs with its params."""

from __future__ import annotations

import functools

import jax
import numpy as np

from serl.agents import hybrid, sac
from serl.agents.config import SACConfig


def make_agent(
    cfg: SACConfig, obs_example: dict, action_dim: int, seed: int, frozen: dict | None = None
):
    """A SACAgent, or a HybridAgent when cfg.grasp_critic (then the last action dimension is the
    gripper)."""
    cls = hybrid.HybridAgent if cfg.grasp_critic else sac.SACAgent
    return cls.create(jax.random.PRNGKey(seed), obs_example, action_dim, cfg, frozen)


def policy_functions(cfg: SACConfig, action_dim: int):
    """(sample(params, obs, rng), evaluate(params, obs)) for a batch or a single observation."""
    if cfg.grasp_critic:
        return (
            functools.partial(hybrid.sample_actions, cfg=cfg),
            functools.partial(hybrid.eval_actions, cfg=cfg),
        )
    return (
        functools.partial(sac.sample_actions, cfg=cfg, action_dim=action_dim),
        functools.partial(sac.eval_actions, cfg=cfg, action_dim=action_dim),
    )


def example_observation(observation_space) -> dict:
    """Zeros shaped like one observation of a gymnasium Dict space."""
    return {k: np.zeros(s.shape, s.dtype) for k, s in observation_space.spaces.items()}


def policy_params_template(
    cfg: SACConfig, observation_space, action_dim: int, seed: int = 0
) -> dict:
    """Zeros shaped and typed like `make_agent(...).policy_params()`: the tree received weights are
    checked against (`serl.transport.params_codec.ParamsDecoder`). Built with `jax.eval_shape`, so
    no network is initialised, no optimizer state is made and no pretrained file is read; only the
    zero leaves are allocated, on the host."""
    obs = example_observation(observation_space)
    abstract = jax.eval_shape(lambda: make_agent(cfg, obs, action_dim, seed).policy_params())
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract)
