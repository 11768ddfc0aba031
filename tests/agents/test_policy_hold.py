"""What a held policy keeps (`learner.policy_hold_updates`, and the warm start's critic
pre-training): after an update, `keep_policy` puts back the actor and temperature, and the shared
encoder unless the agent is a residual, whose zero correction does not read it."""

import jax
import numpy as np
import pytest

from serl.agents.config import SACConfig
from serl.agents.sac import SACAgent, actor_module, executed
from serl.agents.warm_start import keep_policy, policy_state
from serl.envs.contract import BASE_ACTION_KEY
from serl.networks.config import EncoderConfig

# a residual whose encoder has parameters (a camera's bottleneck and the state's latent)
CFG = SACConfig(hidden_dims=(16,), batch_size=8, augment_pad=0, residual_scale=0.5,
                encoder=EncoderConfig(image_keys=("front",), trunk="small", bottleneck_dim=8,
                                      state_latent_dim=8))
EXAMPLE = {"state": np.zeros(3, np.float32), "front": np.zeros((16, 16, 3), np.uint8),
           BASE_ACTION_KEY: np.full(2, 0.25, np.float32)}


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                   strict=True))


def _moved(agent: SACAgent) -> SACAgent:
    """`agent` as if an update had changed every parameter."""
    plus = lambda tree: jax.tree.map(lambda x: x + 1.0, tree)  # noqa: E731
    return agent.replace(
        actor=agent.actor.replace(params=plus(agent.actor.params)),
        temperature=agent.temperature.replace(params=plus(agent.temperature.params)),
        critic=agent.critic.replace(params=plus(agent.critic.params)),
        target_critic_params=plus(agent.target_critic_params))


@pytest.mark.timeout(90)
def test_a_held_residual_keeps_its_zero_correction_and_lets_the_critics_train_the_encoder():
    agent = SACAgent.create(jax.random.PRNGKey(0), EXAMPLE, 2, CFG)
    assert jax.tree.leaves(agent.critic.params["encoder"]), "the encoder must have parameters"
    held = policy_state(agent, with_encoder=False)
    assert set(held) == {"actor", "temperature"}
    moved = _moved(agent)
    kept = keep_policy(moved, held)
    assert _same(kept.actor.params, agent.actor.params)
    assert _same(kept.temperature.params, agent.temperature.params)
    assert _same(kept.critic.params, moved.critic.params)  # the encoder and q heads train
    assert _same(kept.target_critic_params, moved.target_critic_params)
    # the base acts alone, whatever the (trained) encoder reads
    obs = jax.tree.map(lambda x: x[None], EXAMPLE)
    mean, _ = actor_module(CFG, 2).apply({"params": kept.actor.params},
                                         kept.features(kept.critic.params, obs))
    np.testing.assert_array_equal(np.asarray(executed(np.tanh(mean), obs, CFG)),
                                  obs[BASE_ACTION_KEY])


@pytest.mark.timeout(90)
def test_a_held_warm_start_also_keeps_the_encoder_its_policy_reads():
    agent = SACAgent.create(jax.random.PRNGKey(1), EXAMPLE, 2, CFG)
    moved = _moved(agent)
    kept = keep_policy(moved, policy_state(agent))
    assert _same(kept.actor.params, agent.actor.params)
    assert _same(kept.critic.params["encoder"], agent.critic.params["encoder"])
    assert _same(kept.target_critic_params["encoder"], agent.critic.params["encoder"])
    assert _same(kept.critic.params["q"], moved.critic.params["q"])


@pytest.mark.timeout(30)
def test_a_negative_hold_or_pre_training_is_refused_naming_the_field():
    from serl.learner.config import LearnerConfig

    with pytest.raises(ValueError, match=r"policy_hold_updates \(-1\)"):
        LearnerConfig(policy_hold_updates=-1)
    with pytest.raises(ValueError, match=r"warm_start_critic_updates \(-5\)"):
        LearnerConfig(warm_start_critic_updates=-5)
    assert LearnerConfig(policy_hold_updates=2000).policy_hold_updates == 2000
