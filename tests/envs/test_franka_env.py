"""`FrankaEnv` through the whole robot path: the simulated driver (ROS 2 node, MuJoCo Panda) and the real robot
server as processes on a private ROS domain, ROS image cameras, and the scripted operator at the intervention
device. One launch serves the module; each test closes its env (the server has one owner at a time)."""

import math
import time

import gymnasium as gym
import numpy as np
import pytest

import serl  # noqa: F401  (registers the envs)
from serl.devices.scripted import ScriptedOperator
from serl.envs.franka_env import make_franka_env
from serl.envs.franka_sim_view import SimRigView
from serl.envs.wrappers import make_policy_env
from serl.robot.client import RobotFault
from serl.robot.safety import inside


@pytest.fixture(scope="module")
def rig():
    from robot_servers.launch import launch_sim_rig

    with launch_sim_rig("hardware_configs/sim_panda.yaml") as launched:
        yield launched


def franka(rig, **kw):
    return make_franka_env(hardware_config=str(rig.config_path), ros_domain_id=rig.domain_id, **kw)


def call_trigger(rig, service: str) -> str:
    """Call one of the simulated driver's std_srvs/Trigger services, from a node on the rig's domain."""
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions
    from std_srvs.srv import Trigger

    ctx = Context()
    rclpy.init(context=ctx, domain_id=rig.domain_id, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("test_fault_injector", context=ctx, start_parameter_services=False)
    try:
        client = node.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=10.0), f"service {service} not found"
        future = client.call_async(Trigger.Request())
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=10.0)
        executor.shutdown()
        assert future.result() is not None and future.result().success, future.result()
        return future.result().message
    finally:
        node.destroy_node()
        ctx.try_shutdown()


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value")
def test_contract_pacing_and_safety_box(rig):
    sim = gym.make("serl/PandaPickCube-v0").unwrapped
    env = gym.make("serl/Franka-v0", config=None, hardware_config=str(rig.config_path), ros_domain_id=rig.domain_id)
    raw = env.unwrapped
    try:
        assert raw.observation_space == sim.observation_space and raw.action_space == sim.action_space
        obs, info = env.reset(seed=0)
        assert raw.observation_space.contains(obs)
        assert set(info) == {"succeed", "timestamps"} and set(info["timestamps"]) == {"state", "front", "wrist"}
        for name in ("front", "wrist"):
            assert obs["images"][name].std() > 5  # a rendered scene, not a blank frame
            assert time.monotonic() - info["timestamps"][name] < raw.rig.control.max_frame_age_s + 0.1
        with pytest.raises(ValueError, match=r"NaN or infinity at index \[2\]"):
            env.step(np.array([0, 0, np.nan, 0, 0, 0, 0], np.float32))
        start = time.monotonic()
        up = np.array([0, 0, 1, 0, 0, 0, 1], np.float32)  # straight up, past the top of the box
        for _ in range(12):
            obs, reward, terminated, truncated, info = env.step(up)
            pos, quat = raw.last_target[:3], raw.last_target[3:]
            assert inside(pos, quat, raw.limits), raw.last_target  # clipped in the env, before the server
        elapsed = time.monotonic() - start
        assert set(info) >= {"succeed", "gripper_changed", "timestamps"} and info["gripper_changed"] is False
        assert raw.observation_space.contains(obs) and reward == 0.0 and not terminated
        assert 12 * raw.period - 0.02 < elapsed < 12 * raw.period + 0.5  # paced to the control period
        assert raw.loop["period_s"] == pytest.approx(raw.period, abs=0.06)
        box_top = raw.limits.xyz_high[2]
        assert obs["state"]["tcp_pose"][2] == pytest.approx(box_top, abs=0.02)  # went up and stopped at the box
        assert math.isfinite(raw.loop["rtt_s"]) and raw.loop["rtt_s"] < 0.1
    finally:
        env.close()


@pytest.mark.timeout(180)
def test_scripted_operator_lifts_the_cube_through_the_whole_stack(rig):
    raw = franka(rig)
    env = make_policy_env(raw, device=ScriptedOperator(SimRigView(raw), seed=0))
    successes, lengths = 0, []
    try:
        for episode in range(10):
            env.reset(seed=episode)
            terminated = truncated = False
            steps = 0
            while not (terminated or truncated):
                obs, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
                assert info["intervened"] and obs["front"].shape == (128, 128, 3)
                steps += 1
            successes += bool(info["succeed"] and terminated and reward == 1.0)
            lengths.append(steps)
    finally:
        env.close()
    assert successes >= 9, f"{successes}/10 lifted (episode lengths {lengths})"


@pytest.mark.timeout(120)
def test_reflex_truncates_the_episode_and_recovery_needs_confirmation(rig):
    asked = []
    env = franka(rig)
    try:
        env.reset(seed=0)
        for _ in range(3):
            _, _, _, truncated, info = env.step(np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32))
            assert not truncated and "fault" not in info
        call_trigger(rig, f"{rig.config.ros.sim_namespace}/inject_reflex")
        for _ in range(20):  # the fault reaches the server through the driver's mode topic
            obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32))
            if truncated:
                break
        assert truncated and not terminated and reward == 0.0 and "reflex" in info["fault"]
        assert env.observation_space.contains(obs)
        with pytest.raises(RobotFault, match="recovery needs an operator's confirmation"):
            env.reset()
        env.confirm_recovery = lambda reason: asked.append(reason) or False
        with pytest.raises(RobotFault, match="the operator did not confirm recovery"):
            env.reset()
        env.confirm_recovery = lambda reason: asked.append(reason) or True
        obs, info = env.reset(seed=1)
        assert len(asked) == 2 and all("reflex" in reason for reason in asked)
        state = env.client.get_state()
        assert state["mode"] in ("ok", "hold") and not state["fault"]  # hold: the watchdog, no command yet
        _, _, _, truncated, info = env.step(np.zeros(7, np.float32))
        assert not truncated and "fault" not in info
    finally:
        env.close()
