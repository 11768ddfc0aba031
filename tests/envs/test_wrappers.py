"""The policy's wrapper stack on the real simulated env: frame maths, who acts, the recorded-action
rule, the flattened observation, penalty, classifier slot and video."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import imageio
import numpy as np
import pytest
from contract_check import Checked
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import serl  # noqa: F401  (registers the env ids)
from serl import geometry as g
from serl.devices.base import IDLE, DeviceState
from serl.envs.frames import (
    from_policy_frame,
    operator_roundtrip,
    quat_pose_to_euler,
    tcp_rotation,
    to_policy_frame,
)
from serl.envs.intervention import InterventionWrapper
from serl.envs.stack import PolicyEnvConfig, make_policy_env

PICK = "serl/PandaPickCube-v0"


class FakeDevice:
    """Stands in for the SpaceMouse: a scripted base-frame action per step, active on the
    given steps."""

    def __init__(self, actions, active=lambda step: True):
        self.actions = [np.asarray(a, np.float32) for a in actions]
        self.active = active
        self.step = 0

    def read(self) -> DeviceState:
        i, self.step = self.step, self.step + 1
        if i >= len(self.actions):
            return IDLE
        return DeviceState(action=self.actions[i], buttons=("confirm_reset",) if i == 0 else (),
                           active=self.active(i))


def raw_env(**overrides):
    return gym.make(PICK, image_obs=overrides.pop("image_obs", False), **overrides)


def tcp(env) -> tuple[np.ndarray, np.ndarray]:
    return env.unwrapped.sim.tcp_pose()


class WithoutTimestamps(gym.Wrapper):
    """Drops info["timestamps"] (monotonic clock readings, different on every run) so check_env's
    determinism check compares what the stack controls."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {k: v for k, v in info.items() if k != "timestamps"}

    def step(self, action):
        *out, info = self.env.step(action)
        return *out, {k: v for k, v in info.items() if k != "timestamps"}


def raw_obs_with(R: np.ndarray) -> dict:
    return {"state": {"tcp_pose": np.concatenate([np.zeros(3), g.mat_to_quat(R)])}}


# ---------- frame maths ----------
unit = st.floats(-1.0, 1.0, allow_nan=False)
small = st.floats(-0.3, 0.3, allow_nan=False)
# Any rotation, plus orientations about the gripper-down pose (roll = pi), where euler angles wrap.
any_rotation = (st.tuples(unit, unit, unit, unit).filter(lambda q: np.linalg.norm(q) > 0.1)
                .map(g.quat_to_mat))
near_down = st.tuples(small, small, small).map(
    lambda d: g.quat_to_mat(g.euler_to_quat([math.pi + d[0], d[1], d[2]])))
rotations = st.one_of(any_rotation, near_down, st.just(g.quat_to_mat(g.GRIPPER_DOWN_XYZW)))
actions = st.lists(unit, min_size=7, max_size=7).map(np.array)


@pytest.mark.timeout(30)
@settings(max_examples=200, deadline=None)
@given(b=actions, R=rotations)
def test_policy_frame_round_trip(b, R):
    np.testing.assert_allclose(from_policy_frame(to_policy_frame(b, R), R), b, atol=1e-12)
    np.testing.assert_allclose(to_policy_frame(from_policy_frame(b, R), R), b, atol=1e-12)
    # Blocks are rotated, not mixed: lengths and the gripper are kept.
    p = to_policy_frame(b, R)
    assert np.isclose(np.linalg.norm(p[:3]), np.linalg.norm(b[:3]))
    assert np.isclose(np.linalg.norm(p[3:6]), np.linalg.norm(b[3:6])) and p[6] == b[6]


@pytest.mark.timeout(30)
@settings(max_examples=200, deadline=None)
@given(b=actions, R=rotations)
def test_operator_roundtrip_is_recordable_and_exact(b, R):
    executed = operator_roundtrip(raw_obs_with(R), b)
    R_obs = tcp_rotation(raw_obs_with(R))
    recorded = to_policy_frame(executed, R_obs)
    assert np.all(np.abs(recorded) <= 1.0 + 1e-12)
    assert np.all(np.abs(executed) <= 1.0 + 1e-12)  # the raw env never clips an operator action
    np.testing.assert_allclose(from_policy_frame(recorded, R_obs), executed, atol=1e-6)
    # Scaling keeps each block's direction.
    for blk in (slice(0, 3), slice(3, 6)):
        assert np.allclose(np.cross(executed[blk], b[blk]), 0.0, atol=1e-9)
        assert np.dot(executed[blk], b[blk]) >= 0.0


@pytest.mark.timeout(30)
@settings(max_examples=200, deadline=None)
@given(d=st.tuples(small, small, small), sign=st.sampled_from([1.0, -1.0]))
def test_euler_round_trip_near_roll_pi(d, sign):
    q = g.euler_to_quat([sign * math.pi + d[0], d[1], d[2]])
    euler = quat_pose_to_euler(np.concatenate([[0.1, 0.2, 0.3], q]))
    np.testing.assert_allclose(euler[:3], [0.1, 0.2, 0.3])
    assert g.quat_angle(g.euler_to_quat(euler[3:]), q) < 1e-7  # same rotation (angles may wrap)


# ---------- the stack on the real env ----------
@pytest.mark.timeout(30)
def test_flattened_observation_and_check_env():
    env = make_policy_env(raw_env())
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (19,) and obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    # At reset the relative pose is the identity: zero position and zero euler angles.
    np.testing.assert_allclose(obs["state"][:6], 0.0, atol=1e-6)
    with warnings.catch_warnings():
        # check_env prefers unwrapped envs; the stack is what we check here
        warnings.simplefilter("ignore")
        # (its close check rebuilds the env from its spec, which a hand-built stack has not)
        check_env(WithoutTimestamps(env), skip_render_check=True, skip_close_check=True)

    env = make_policy_env(raw_env(image_obs=True))
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"state", "front", "wrist"}
    assert obs["front"].shape == (128, 128, 3) and obs["front"].dtype == np.uint8
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    env.close()


@pytest.mark.timeout(30)
def test_relative_frame_observation_follows_tcp_frame():
    env = make_policy_env(raw_env(reset_tcp_yaw_range=0.5))
    env.reset(seed=1)
    R = g.quat_to_mat(tcp(env)[1])
    for _ in range(3):  # +x in the TCP frame
        obs, *_ = env.step(np.array([1, 0, 0, 0, 0, 0, 0], np.float32))
    moved = obs["state"][:3]
    assert moved[0] > 0.03 and np.all(np.abs(moved[1:]) < 0.3 * moved[0])
    # The reported velocity is the base-frame twist rotated into the TCP frame.
    R_now = g.quat_to_mat(tcp(env)[1])
    twist = env.unwrapped.sim.tcp_twist()
    np.testing.assert_allclose(obs["state"][6:9], R_now.T @ twist[:3], atol=1e-5)
    # the yaw makes the frames differ
    assert not np.allclose(R, np.diag([1.0, -1.0, -1.0]), atol=1e-2)


@pytest.mark.timeout(30)
def test_device_acts_only_when_active():
    device_action = [0, 1, 0, 0, 0, 0, 0]  # base +y
    device = FakeDevice([device_action] * 6, active=lambda i: i in (2, 3))
    env = InterventionWrapper(raw_env(), device)
    env.reset(seed=0)
    policy_action = np.array([1, 0, 0, 0, 0, 0, 0], np.float32)  # base +x
    for i in range(6):
        before = tcp(env)[0]
        _, _, _, _, info = env.step(policy_action)
        motion = tcp(env)[0] - before
        assert info["intervened"] is (i in (2, 3))
        assert info["buttons"] == (("confirm_reset",) if i == 0 else ())
        if i in (2, 3):
            np.testing.assert_array_equal(info["intervene_action"], np.float32(device_action))
            assert motion[1] > 0.005 and motion[1] > 2 * abs(motion[0])
        else:
            assert "intervene_action" not in info
            assert motion[0] > 0.005 and motion[0] > 2 * abs(motion[1])


@pytest.mark.timeout(30)
def test_recorded_action_is_in_policy_frame():
    device = FakeDevice([[0, 1, 0, 0, 0, 0, 0]])
    env = make_policy_env(raw_env(), device=device)
    env.reset(seed=0)
    R = g.quat_to_mat(tcp(env)[1])
    _, _, _, _, info = env.step(np.zeros(7, np.float32))
    np.testing.assert_allclose(info["intervene_action"], to_policy_frame([0, 1, 0, 0, 0, 0, 0], R),
                               atol=1e-5)
    assert info["intervened"] and env.action_space.contains(info["intervene_action"])


def operator_script(n: int) -> list[np.ndarray]:
    """Base-frame device actions: tilt and twist the gripper away from straight down, then random
    moves that often leave [-1, 1] once mapped into the tilted TCP frame, with gripper commands."""
    rng = np.random.default_rng(5)
    script = [np.array([0.5, -0.3, 0.2, 1.0, -0.8, 1.0, 0.0])] * 6
    script += [np.append(rng.uniform(-1, 1, 6), rng.choice([-1.0, 0.0, 1.0])) for _ in range(n - 6)]
    return script


@pytest.mark.timeout(30)
@pytest.mark.parametrize("relative_frame", [True, False])
def test_recorded_intervention_replays_same_motion(relative_frame):
    cfg = PolicyEnvConfig(relative_frame=relative_frame)
    script = operator_script(20)
    env = raw_env()
    operated = make_policy_env(env, cfg, device=FakeDevice(script))
    operated.reset(seed=3)
    rng = np.random.default_rng(0)
    recorded, poses = [], []
    for _ in script:
        overridden = rng.uniform(-1, 1, 7).astype(np.float32)
        _, _, terminated, truncated, info = operated.step(overridden)
        assert info["intervened"] and not (terminated or truncated)
        recorded.append(info["intervene_action"])
        poses.append(tcp(env))
    assert all(operated.action_space.contains(a) for a in recorded)
    # R was far from trivial
    assert max(g.quat_angle(q, g.GRIPPER_DOWN_XYZW) for _, q in poses) > 0.3
    if relative_frame:  # some recorded actions were scaled into [-1, 1]
        assert any(np.isclose(np.abs(a[:6]).max(), 1.0) and not np.isclose(np.abs(s[:6]).max(), 1.0)
                   for a, s in zip(recorded, script, strict=True))

    replay = make_policy_env(env, cfg, device=FakeDevice(script, active=lambda i: False))
    replay.reset(seed=3)
    for action, (pos, quat) in zip(recorded, poses, strict=True):
        _, _, _, _, info = replay.step(action)
        assert not info["intervened"]
        replay_pos, replay_quat = tcp(env)
        assert np.max(np.abs(replay_pos - pos)) < 1e-5
        assert g.quat_angle(replay_quat, quat) < 1e-5


@pytest.mark.timeout(30)
def test_grasp_penalty_only_when_gripper_changes():
    env = Checked(make_policy_env(raw_env(), PolicyEnvConfig(grasp_penalty=0.1)))
    env.reset(seed=0)  # pick-cube starts open
    commands = [-1.0, -1.0, 0.0, 1.0, 1.0, -0.2, -1.0]
    expected = [-0.1, 0.0, 0.0, -0.1, 0.0, 0.0, -0.1]
    for command, penalty in zip(commands, expected, strict=True):
        _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, command], np.float32))
        assert isinstance(info["grasp_penalty"], float)
        assert info["grasp_penalty"] == pytest.approx(penalty)


@pytest.mark.timeout(30)
def test_reward_classifier_slot():
    env = Checked(make_policy_env(raw_env(), classifier=lambda obs: 0.9))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(7, np.float32))
    assert reward == 1.0 and terminated and info["classifier_prob"] == pytest.approx(0.9)

    env = Checked(make_policy_env(raw_env(), classifier=lambda obs: 0.1))
    env.reset(seed=0)
    for _ in range(3):
        _, reward, terminated, _, info = env.step(np.zeros(7, np.float32))
        assert reward == 0.0 and not terminated and info["classifier_prob"] == pytest.approx(0.1)


def frame_count(path) -> int:
    with imageio.v2.get_reader(path) as reader:
        return sum(1 for _ in reader)


@pytest.mark.timeout(30)
def test_video_written_per_episode(tmp_path):
    env = make_policy_env(raw_env(image_obs=True, max_episode_steps=4),
                          video_path=tmp_path / "videos")
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.zeros(7, np.float32))
        done = terminated or truncated
    (path,) = written = env.get_wrapper_attr("written")
    assert path.stat().st_size > 0 and frame_count(path) == 5  # the reset frame and 4 steps
    with imageio.v2.get_reader(path) as reader:
        assert reader.get_data(0).shape == (128, 256, 3)  # front and wrist side by side
    env.reset(seed=1)
    env.step(np.zeros(7, np.float32))
    env.close()  # an unfinished episode is written on close
    assert len(written) == 2 and frame_count(written[1]) == 2


@pytest.mark.timeout(30)
def test_video_writes_nothing_without_frames(tmp_path):
    env = make_policy_env(raw_env(), video_path=tmp_path / "videos")  # no cameras
    env.reset(seed=0)
    env.step(np.zeros(7, np.float32))
    env.close()
    assert env.get_wrapper_attr("written") == [] and not (tmp_path / "videos").exists()


@pytest.mark.timeout(30)
def test_a_failing_classifier_never_crashes_the_actor():
    import gymnasium as gym

    from serl.envs.reward_wrappers import RewardClassifierWrapper

    calls = iter([RuntimeError("model file vanished"), float("nan"), 0.9])

    def flaky(obs):
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    env = RewardClassifierWrapper(gym.make("serl/PandaPickCube-v0", image_obs=False), flaky)
    env.reset(seed=0)
    for expected_error in ("RuntimeError: model file vanished", "not finite"):
        _, reward, terminated, _, info = env.step(np.zeros(7, np.float32))
        assert reward == 0.0 and not terminated and expected_error in info["classifier_error"]
    _, reward, terminated, _, info = env.step(np.zeros(7, np.float32))
    assert reward == 1.0 and terminated and "classifier_error" not in info and env.errors == 2
