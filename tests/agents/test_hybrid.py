"""The hybrid agent's grasp critic (double DQN over {close, stay, open})."""

import jax
import numpy as np
import pytest

from serl.agents.config import SACConfig
from serl.agents.hybrid import HybridAgent, eval_actions, grasp_index

CFG = SACConfig(hidden_dims=(32, 32), batch_size=96, augment_pad=0)


@pytest.mark.timeout(90)
def test_grasp_critic_learns_a_three_armed_bandit():
    # One state, one step: reward depends only on the gripper choice;
    # "stay" pays most, a change is penalised.
    rng = np.random.default_rng(0)
    obs = {"state": np.ones(3, np.float32)}
    payout = {0: 0.2, 1: 1.0, 2: 0.5}
    agent = HybridAgent.create(jax.random.PRNGKey(0), obs, 7, CFG)
    for _ in range(300):
        grip = rng.choice([-1.0, 0.0, 1.0], (2, CFG.batch_size)).astype(np.float32)
        arm = rng.uniform(-1, 1, (2, CFG.batch_size, 6)).astype(np.float32)
        idx = np.asarray(grasp_index(grip))
        batch = {
            "observations": {"state": np.ones((2, CFG.batch_size, 3), np.float32)},
            "next_observations": {"state": np.ones((2, CFG.batch_size, 3), np.float32)},
            "actions": np.concatenate([arm, grip[..., None]], -1),
            "rewards": np.vectorize(payout.get)(idx).astype(np.float32),
            "grasp_penalty": np.where(idx != 1, -0.1, 0.0).astype(np.float32),
            "masks": np.zeros((2, CFG.batch_size), np.float32),
        }
        agent, info = agent.update(batch)
    action = np.asarray(eval_actions(agent.policy_params(), obs, cfg=CFG, arm_dims=6))
    assert action.shape == (7,) and action[6] == 0.0  # stay
    from serl.agents.hybrid import GraspCritic

    feats = agent.sac.features(agent.sac.critic.params, {"state": np.ones((1, 3), np.float32)})
    q = np.asarray(GraspCritic(CFG.hidden_dims).apply({"params": agent.grasp.params}, feats))[0]
    np.testing.assert_allclose(q, [0.1, 1.0, 0.4], atol=0.1)


@pytest.mark.timeout(30)
def test_grasp_index_follows_the_env_thresholds():
    gripper = np.array([-1, -0.5, -0.49, 0, 0.49, 0.5, 1.0])
    np.testing.assert_array_equal(np.asarray(grasp_index(gripper)), [0, 0, 1, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="at least one arm axis and the gripper, got 1-D"):
        HybridAgent.create(jax.random.PRNGKey(0), {"state": np.zeros(3, np.float32)}, 1, CFG)


@pytest.mark.timeout(60)
def test_the_arm_has_the_axes_the_policy_commands():
    # x, y, z, yaw and the gripper: SAC over 4 arm dimensions, the grasp critic on the last entry
    obs = {"state": np.ones(3, np.float32)}
    agent = HybridAgent.create(jax.random.PRNGKey(0), obs, 5, CFG)
    assert agent.sac.action_dim == 4
    action = np.asarray(eval_actions(agent.policy_params(), obs, cfg=CFG, arm_dims=4))
    assert action.shape == (5,) and action[4] in (-1.0, 0.0, 1.0)
