"""The simulated Panda against the environment contract of DESIGN.md, on real MuJoCo."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import serl  # noqa: F401  (registers the envs)
from serl import geometry as g
from serl.envs.contract import check_info
from serl.envs.registration import make
from serl.envs.sim.model import TCP_OFFSET
from serl.robot.safety import inside

IDS = ["serl/PandaPickCube-v0", "serl/PandaPegInsert-v0"]


def state_env(env_id=IDS[0], **kw):
    return gym.make(env_id, image_obs=False, **kw).unwrapped


class _WithoutCaptureTimes(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """check_env compares infos across identical seeds; capture times are wall-clock and
    rightly differ."""

    def __init__(self, env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {k: v for k, v in info.items() if k != "timestamps"}

    def step(self, action):
        *out, info = self.env.step(action)
        return (*out, {k: v for k, v in info.items() if k != "timestamps"})


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value")
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.parametrize("env_id", IDS)
def test_spaces_are_the_contract(env_id):
    env = gym.make(env_id).unwrapped
    assert env.action_space == spaces.Box(-1.0, 1.0, (7,), np.float32)
    f32 = lambda n, lo=-np.inf, hi=np.inf: spaces.Box(lo, hi, (n,), np.float32)  # noqa: E731
    image = spaces.Box(0, 255, (128, 128, 3), np.uint8)
    assert env.observation_space == spaces.Dict({
        "state": spaces.Dict({"tcp_pose": f32(7), "tcp_vel": f32(6),
                              "gripper_pose": f32(1, 0.0, 1.0), "tcp_force": f32(3),
                              "tcp_torque": f32(3)}),
        "images": spaces.Dict({"front": image, "wrist": image}),
    })
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and check_info(info)
    assert set(info["timestamps"]) == {"state", "front", "wrist"}
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(info["succeed"], bool)
    check_info(info)
    # the same info keys as FrankaEnv (which gives a hold's reason)
    assert info["safety_hold"] is None
    check_env(_WithoutCaptureTimes(env), skip_render_check=True)
    assert set(state_env(env_id).observation_space) == {"state"}


@pytest.mark.timeout(30)
def test_tcp_conventions():
    env = state_env()
    obs, _ = env.reset(seed=3)
    sim = env.sim
    flange = sim.data.body("hand").xpos
    assert np.linalg.norm(sim.tcp_pose()[0] - flange) == pytest.approx(TCP_OFFSET, abs=1e-9)
    # At reset the gripper points down: xyzw quaternion (1, 0, 0, 0) up to sign, i.e. roll = pi.
    assert abs(obs["state"]["tcp_pose"][3]) == pytest.approx(1.0, abs=1e-4)
    # A full +x action moves the target by the action scale (metres per step) from the
    # measured pose, in the base frame; the arm follows through the impedance controller,
    # with some lag in steady motion.
    start = sim.tcp_pose()[0]
    env.step(np.array([1, 0, 0, 0, 0, 0, 0], np.float32))
    np.testing.assert_allclose(env.commanded_pose[0] - start, [env.cfg.action_scale_xyz, 0, 0],
                               atol=1e-9)
    xs = [sim.tcp_pose()[0]]
    for _ in range(6):
        env.step(np.array([1, 0, 0, 0, 0, 0, 0], np.float32))
        xs.append(sim.tcp_pose()[0])
    per_step = np.diff(np.array(xs), axis=0)[-3:]
    scale = env.cfg.action_scale_xyz
    assert np.all(per_step[:, 0] > 0.6 * scale) and np.all(per_step[:, 0] <= scale)
    assert np.all(np.abs(per_step[:, 1:]) < 0.001)


@pytest.mark.timeout(30)
def test_rotation_delta_is_applied_in_the_base_frame():
    env = state_env()
    env.reset(seed=0)
    pos, quat = env.sim.tcp_pose()
    a = np.array([0, 0, 0, 0.3, -0.2, 0.5, 0], np.float32)
    env.step(a)
    expected = g.quat_mul(g.euler_to_quat(a[3:6] * env.cfg.action_scale_rot), quat)
    assert g.quat_angle(env.commanded_pose[1], expected) < 1e-6


@pytest.mark.timeout(90)
@settings(max_examples=12, deadline=None)
@given(actions=st.lists(st.lists(st.sampled_from([-1.0, -0.6, 0.0, 0.6, 1.0]) | st.floats(-1, 1),
                                 min_size=7, max_size=7), min_size=5, max_size=40),
       env_index=st.integers(0, 1))
def test_commanded_pose_never_leaves_the_box_and_cone(actions, env_index):
    env = ENVS[env_index]
    env.reset(seed=len(actions))
    for a in actions:
        env.step(np.array(a, np.float32))
        assert inside(*env.commanded_pose, env.cfg.safety, tol=1e-6)
    # The measured pose stays near the box too (the impedance controller tracks within a few mm).
    pos = env.sim.tcp_pose()[0]
    assert np.all(pos > np.array(env.cfg.safety.xyz_low) - 0.01)
    assert np.all(pos < np.array(env.cfg.safety.xyz_high) + 0.01)


ENVS = [state_env(i) for i in IDS]


@pytest.mark.timeout(30)
def test_gripper_semantics():
    env = state_env()
    env.reset(seed=0)
    opening = lambda: env.sim.gripper_opening()  # noqa: E731
    assert opening() > 0.99
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, -0.5], np.float32))  # -0.5 closes
    assert info["gripper_changed"]
    for _ in range(10):
        _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, -1.0], np.float32))
        assert not info["gripper_changed"]
    assert opening() < 0.02
    for hold in (0.49, -0.49, 0.0):  # strictly between the thresholds: hold
        env.step(np.array([0, 0, 0, 0, 0, 0, hold], np.float32))
    assert opening() < 0.02
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 0.5], np.float32))  # 0.5 opens
    assert info["gripper_changed"]
    for _ in range(10):
        env.step(np.array([0, 0, 0, 0, 0, 0, 0.2], np.float32))
    assert opening() > 0.98
    locked = state_env(IDS[1])  # the peg task holds its gripper closed whatever is commanded
    locked.reset(seed=0)
    before = locked.sim.gripper_opening()
    _, _, _, _, info = locked.step(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32))
    assert not info["gripper_changed"]
    assert locked.sim.gripper_opening() == pytest.approx(before, abs=0.01)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_trajectory(env_id):
    def rollout():
        env = state_env(env_id)
        obs, _ = env.reset(seed=42)
        rng = np.random.default_rng(0)
        states = [obs["state"]["tcp_pose"]]
        for _ in range(15):
            obs, *_ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
            states.append(np.concatenate([obs["state"]["tcp_pose"], obs["state"]["tcp_force"]]))
        return states

    a, b = rollout(), rollout()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    env = state_env(env_id)
    first = env.reset(seed=1)[0]["state"]["tcp_pose"]
    assert not np.array_equal(first, env.reset(seed=2)[0]["state"]["tcp_pose"])


@pytest.mark.timeout(30)
def test_wrench_is_the_external_force_at_the_tcp():
    env = state_env()
    env.reset(seed=0)
    sim = env.sim
    force, torque = sim.tcp_wrench()
    assert np.linalg.norm(force) < 1e-6  # free in the air: the hand's own weight is not reported
    cube_pos = sim.data.body("cube").xpos.copy()
    # Press down on the table beside the cube: the table pushes the hand up (+z).
    sim.set_target(cube_pos + np.array([0.0, 0.1, -0.05]), sim.tcp_pose()[1])
    sim.advance(1.0)
    force, _ = sim.tcp_wrench()
    assert force[2] > 20.0


@pytest.mark.timeout(30)
def test_held_cube_weight_appears_as_downward_force():
    from serl.devices import ScriptedOperator

    env = state_env()
    env.reset(seed=5)
    operator = ScriptedOperator(env)
    for _ in range(100):
        obs, _, terminated, _, _ = env.step(operator.read().action)
        if terminated:
            break
    assert terminated
    for _ in range(5):  # hold still in the air
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, -1], np.float32))
    weight = env.sim.model.body("cube").mass[0] * 9.81
    assert obs["state"]["tcp_force"][2] == pytest.approx(-weight, rel=0.15)


@pytest.mark.timeout(60)
def test_cameras_render_and_front_sees_the_cube():
    env = gym.make(IDS[0]).unwrapped
    obs, _ = env.reset(seed=0)
    for name in ("front", "wrist"):
        img = obs["images"][name]
        assert img.dtype == np.uint8 and img.shape == (128, 128, 3) and img.std() > 5.0
    front = obs["images"]["front"].astype(int)
    red = (front[..., 0] > 120) & (front[..., 1] < 60) & (front[..., 2] < 60)
    assert red.sum() >= 10  # the red cube
    # Moving the cube out of view removes those pixels: they were the cube, not something else red.
    env.sim.data.qpos[env.sim.model.joint("cube").qposadr[0] + 2] = -1.0
    import mujoco

    mujoco.mj_forward(env.sim.model, env.sim.data)
    front = env.render()[:, :128].astype(int)
    assert ((front[..., 0] > 120) & (front[..., 1] < 60) & (front[..., 2] < 60)).sum() == 0


@pytest.mark.timeout(30)
def test_bad_actions_are_refused_with_the_reason():
    env = state_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(7,\).*\(6,\)"):
        env.step(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match=r"NaN.*index \[2\]"):
        env.step(np.array([0, 0, np.nan, 0, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match=r"index \[6\]"):
        env.step(np.array([0, 0, 0, 0, 0, 0, np.inf], np.float32))


@pytest.mark.timeout(30)
def test_unknown_ids_and_options_list_the_valid_ones():
    with pytest.raises(ValueError, match="serl/PandaPegInsert-v0.*serl/PandaPickCube-v0"):
        make("serl/PandaStackBlocks-v0")
    with pytest.raises(TypeError, match="image_obs"):
        gym.make(IDS[0], image_ob=False)


@pytest.mark.timeout(30)
def test_realtime_paces_steps_to_the_control_period():
    import time

    env = state_env(realtime=True)
    env.reset(seed=0)
    start = time.monotonic()
    for _ in range(5):
        env.step(np.zeros(7, np.float32))
    assert time.monotonic() - start >= 0.45
    assert math.isclose(env.period, 0.1)


@pytest.mark.timeout(60)
def test_missing_gl_backend_names_the_variable_and_packages():
    import ctypes.util
    import subprocess
    import sys

    if ctypes.util.find_library("OSMesa"):
        pytest.fail("this check needs a GL backend whose libraries are absent; "
                    "OSMesa is installed here")
    code = "import gymnasium as gym, serl; gym.make('serl/PandaPickCube-v0')"
    out = subprocess.run([sys.executable, "-c", code],
                         env={**__import__("os").environ, "MUJOCO_GL": "osmesa"},
                         capture_output=True, text=True, timeout=50)
    assert out.returncode != 0
    assert "MUJOCO_GL='osmesa'" in out.stderr
    assert "libosmesa6" in out.stderr and "libegl1" in out.stderr


@pytest.mark.timeout(30)
def test_privileged_object_pose_for_state_only_training():
    from serl.envs.stack import make_policy_env

    env = state_env(object_pose=True)
    obs, _ = env.reset(seed=2)
    cube_pos, _ = env.sim.object_pose("cube")
    np.testing.assert_allclose(obs["state"]["object_pose"][:3], cube_pos, atol=1e-6)
    flat = make_policy_env(env)
    obs, _ = flat.reset(seed=2)
    assert obs["state"].shape == (25,)
    # In the reset frame turned z-up, a cube lying flat has roll = pitch = 0: no euler wrap at +-pi.
    np.testing.assert_allclose(obs["state"][22:24], 0.0, atol=1e-5)
    assert abs(obs["state"][24]) <= np.pi / 4 + 1e-6  # its yaw, within the reset's randomisation
