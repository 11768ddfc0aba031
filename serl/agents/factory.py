"""Which agent a config asks for, and the pure policy functions the actor runs with its params
(the published weights; a frozen trunk is built locally from the config and bound in)."""

from __future__ import annotations

import functools

import jax
import numpy as np

from serl.agents import hybrid, sac
from serl.agents.config import SACConfig
from serl.networks.trunk import frozen_trunk


def make_agent(cfg: SACConfig, obs_example: dict, action_dim: int, seed: int):
    """A SACAgent, or a HybridAgent when cfg.grasp_critic (then the last action dimension is the
    gripper). A frozen trunk is not part of it (`serl.networks.trunk.frozen_trunk`)."""
    cls = hybrid.HybridAgent if cfg.grasp_critic else sac.SACAgent
    return cls.create(jax.random.PRNGKey(seed), obs_example, action_dim, cfg)


def policy_functions(cfg: SACConfig, action_dim: int):
    """(sample(params, obs, rng), evaluate(params, obs)) for a batch or a single observation, over
    published `policy_params()`. A frozen trunk is built here from `cfg.encoder` (its pretrained
    file or its seed; once per process) and placed on the default device."""
    trunk = frozen_trunk(cfg.encoder)
    trunk = None if trunk is None else jax.device_put(trunk)
    if cfg.grasp_critic:
        return (
            functools.partial(hybrid.sample_actions, cfg=cfg, arm_dims=action_dim - 1,
                              trunk=trunk),
            functools.partial(hybrid.eval_actions, cfg=cfg, arm_dims=action_dim - 1, trunk=trunk),
        )
    return (
        functools.partial(sac.sample_actions, cfg=cfg, action_dim=action_dim, trunk=trunk),
        functools.partial(sac.eval_actions, cfg=cfg, action_dim=action_dim, trunk=trunk),
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
    zero leaves are allocated, on the host. A frozen trunk is not in it (not published)."""
    obs = example_observation(observation_space)
    abstract = jax.eval_shape(lambda: make_agent(cfg, obs, action_dim, seed).policy_params())
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract)
