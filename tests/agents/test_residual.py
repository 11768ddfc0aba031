"""Residual SAC on a base policy: the critics' bootstrap target values the action the env would
execute (the base's action plus the scaled correction, clipped), never the bare correction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from serl.agents.config import SACConfig
from serl.agents.sac import SACAgent, executed
from serl.envs.contract import BASE_ACTION_KEY
from serl.networks.ensemble import subsample

CFG = SACConfig(hidden_dims=(32, 32), batch_size=16, augment_pad=0, residual_scale=0.5,
                backup_entropy=False)
ACTION_DIM = 2


def _batch(next_base: float) -> dict:
    rng = np.random.default_rng(0)

    def obs(base: float) -> dict:
        return {"state": rng.normal(size=(16, 3)).astype(np.float32),
                BASE_ACTION_KEY: np.full((16, ACTION_DIM), base, np.float32)}

    return {"observations": obs(0.1), "next_observations": obs(next_base),
            "actions": rng.uniform(-1, 1, (16, ACTION_DIM)).astype(np.float32),
            "rewards": rng.uniform(0, 1, 16).astype(np.float32),
            "masks": np.ones(16, np.float32)}


def _target(agent: SACAgent, batch: dict, rng: jax.Array, use_executed: bool) -> float:
    """The critic step's mean bootstrap target, recomputed with the correction either executed on
    the base action or taken bare."""
    next_rng, sub_rng = jax.random.split(rng)
    nobs = batch["next_observations"]
    feats = agent.features(agent.critic.params, nobs)
    actions, _ = agent.policy(agent.actor.params, feats, next_rng)
    if use_executed:
        actions = executed(actions, nobs, agent.cfg)
    target_feats = agent.features(agent.target_critic_params, nobs)
    q = agent.q_values(agent.target_critic_params["q"], target_feats, actions)
    q = subsample(q, sub_rng, agent.cfg.critic_subsample).min(axis=0)
    return float((batch["rewards"] + agent.cfg.discount * batch["masks"] * q).mean())


@pytest.mark.timeout(120)
def test_the_critic_target_values_the_executed_action_not_the_bare_correction():
    example = {"state": np.zeros(3, np.float32),
               BASE_ACTION_KEY: np.zeros(ACTION_DIM, np.float32)}
    agent = SACAgent.create(jax.random.PRNGKey(0), example, ACTION_DIM, CFG)
    rng = jax.random.PRNGKey(7)
    targets = {}
    for base in (0.9, -0.9):
        batch = jax.tree.map(jnp.asarray, _batch(base))
        _, info = agent.critic_step(batch, rng)  # not donated: critic_step is not the jitted update
        with_executed = _target(agent, batch, rng, use_executed=True)
        bare = _target(agent, batch, rng, use_executed=False)
        assert float(info["target_q"]) == pytest.approx(with_executed, rel=1e-5, abs=1e-6)
        assert abs(with_executed - bare) > 1e-4, "the base action must change the target"
        targets[base] = float(info["target_q"])
    assert targets[0.9] != pytest.approx(targets[-0.9], abs=1e-4)
