"""The policy commands only the axes its task names (`PolicyEnvConfig.arm_axes`) and the gripper
unless the env locks it: the action space, the expansion to the 7-D action, and on the real
simulated env the operator held to the same axes, recorded on them and replayed exactly."""

from __future__ import annotations

import numpy as np
import pytest
from test_wrappers import FakeDevice, operator_script, raw_env, tcp

from serl import geometry as g
from serl.envs.action_axes import expand, project
from serl.envs.contract import policy_spaces
from serl.envs.sim.config import task_defaults
from serl.envs.stack import PolicyEnvConfig, make_policy_env

NO_TILT = ("x", "y", "z", "yaw")


def tilt(quat) -> float:
    """Angle of the tool axis away from straight down (rad)."""
    return float(np.arccos(np.clip(-g.quat_to_mat(quat)[2, 2], -1.0, 1.0)))


def test_action_space_is_the_axes_then_the_gripper_unless_locked():
    pick, peg = task_defaults("pick_cube"), task_defaults("peg_insert")
    assert policy_spaces(pick, PolicyEnvConfig())[1].shape == (7,)
    assert policy_spaces(pick, PolicyEnvConfig(arm_axes=NO_TILT))[1].shape == (5,)
    assert policy_spaces(peg, PolicyEnvConfig())[1].shape == (6,)  # no dead gripper entry


def test_expand_fills_the_held_axes_with_zero_and_refuses_a_wrong_shape():
    full = expand([0.1, -0.2, 0.3, 0.4, -1.0], NO_TILT, gripper=True)
    np.testing.assert_allclose(full, [0.1, -0.2, 0.3, 0.0, 0.0, 0.4, -1.0])
    np.testing.assert_allclose(project(full, NO_TILT, gripper=True), [0.1, -0.2, 0.3, 0.4, -1.0])
    assert expand(np.ones(6), ("x", "y", "z", "roll", "pitch", "yaw"), gripper=False)[6] == 0.0
    with pytest.raises(ValueError, match=r"shape \(5,\).*x, y, z, yaw, gripper.*\(7,\)"):
        expand(np.zeros(7), NO_TILT, gripper=True)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("relative_frame", [True, False])
def test_the_operator_is_held_to_the_policys_axes_and_its_recording_replays(relative_frame):
    cfg = PolicyEnvConfig(relative_frame=relative_frame, arm_axes=NO_TILT)
    script = operator_script(20)  # tilts and twists hard, then random moves
    env = raw_env()
    operated = make_policy_env(env, cfg, device=FakeDevice(script))
    assert operated.action_space.shape == (5,)
    operated.reset(seed=3)
    recorded, poses = [], []
    for _ in script:
        _, _, _, _, info = operated.step(np.zeros(5, np.float32))
        assert info["intervened"]
        recorded.append(info["intervene_action"])
        poses.append(tcp(env))
    assert all(operated.action_space.contains(a) for a in recorded)
    # the hand never tilted, though the operator asked for ~1 rad; it did turn about its axis
    assert max(tilt(q) for _, q in poses) < 0.02
    assert max(g.quat_angle(q, g.GRIPPER_DOWN_XYZW) for _, q in poses) > 0.3

    replay = make_policy_env(env, cfg, device=FakeDevice(script, active=lambda i: False))
    replay.reset(seed=3)
    for action, (pos, quat) in zip(recorded, poses, strict=True):
        replay.step(action)
        replay_pos, replay_quat = tcp(env)
        assert np.max(np.abs(replay_pos - pos)) < 1e-5
        assert g.quat_angle(replay_quat, quat) < 1e-5
