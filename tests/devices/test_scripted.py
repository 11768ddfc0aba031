"""The scripted operator: solves both tasks through the 7-D action only, and behaves as a device."""

import gymnasium as gym
import numpy as np
import pytest

import serl  # noqa: F401
from serl.devices import InterventionDevice, ScriptedOperator, ScriptedOperatorConfig


def success_rate(env_id, episodes, cfg=ScriptedOperatorConfig()):
    env = gym.make(env_id, image_obs=False)
    operator = ScriptedOperator(env, cfg, seed=0)
    wins = 0
    for ep in range(episodes):
        env.reset(seed=1000 + ep)
        for _ in range(100):
            state = operator.read()
            assert state.action.dtype == np.float32 and np.all(np.abs(state.action) <= 1.0)
            _, _, terminated, truncated, info = env.step(state.action)
            if terminated or truncated:
                break
        wins += info["succeed"]
    return wins / episodes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id", ["serl/PandaPickCube-v0", "serl/PandaPegInsert-v0"])
def test_solves_the_task(env_id):
    assert success_rate(env_id, 100) >= 0.95


@pytest.mark.timeout(60)
def test_still_solves_with_action_noise():
    assert success_rate("serl/PandaPickCube-v0", 10, ScriptedOperatorConfig(noise_std=0.1)) >= 0.9


@pytest.mark.timeout(30)
def test_reads_the_simulator_without_writing_it():
    env = gym.make("serl/PandaPickCube-v0", image_obs=False)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    before = (sim.data.qpos.copy(), sim.data.qvel.copy(), sim.data.ctrl.copy(), sim.gripper_target)
    operator = ScriptedOperator(env)
    assert isinstance(operator, InterventionDevice)
    for _ in range(5):
        operator.read()
    after = (sim.data.qpos, sim.data.qvel, sim.data.ctrl, sim.gripper_target)
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.timeout(30)
def test_takeover_knob_sets_how_often_it_is_in_control():
    env = gym.make("serl/PandaPickCube-v0", image_obs=False)
    env.reset(seed=0)
    never = ScriptedOperator(env, ScriptedOperatorConfig(takeover_prob=0.0), seed=0)
    assert not any(never.read().active for _ in range(50))
    sometimes = ScriptedOperator(env, ScriptedOperatorConfig(takeover_prob=0.05, takeover_steps=5),
                                 seed=0)
    active = [sometimes.read().active for _ in range(400)]
    assert 0.05 < np.mean(active) < 0.5
    # Take-overs come in runs of takeover_steps, so control does not flicker step to step.
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, np.array(active, int), 0])))[::2]
    assert np.all(runs % 5 == 0)
