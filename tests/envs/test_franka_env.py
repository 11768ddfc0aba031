"""`FrankaEnv` through the whole robot path, built exactly as `serl train sim_pick_cube_ros` builds
it (`runtime.build_env`): the env launches the simulated driver (ROS 2 node, MuJoCo Panda) and the
real robot server as processes on a private ROS domain, reads ROS image cameras, and the scripted
operator sits at the intervention device. One env (one launch) serves the module; closing it stops
the processes."""

import dataclasses
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from contract_check import Checked

import experiments
import serl  # noqa: F401  (registers the envs)
from serl.commands.runtime import build_env
from serl.devices.base import IDLE, DeviceState
from serl.envs.contract import check_info
from serl.envs.franka_config import device_confirmation
from serl.envs.franka_env import FrankaEnv, RigUnavailable
from serl.envs.franka_launch import live_group_members
from serl.robot.client import RobotFault, RobotTimeout
from serl.robot.safety import cone_coordinates, inside


@pytest.fixture(scope="module")
def policy_env():
    # Every info the stack and the env emit is checked against the env contract.
    env = Checked(build_env(experiments.load("sim_pick_cube_ros")))
    yield env
    launched = env.unwrapped.sim_rig
    env.close()
    if launched is not None:  # the launcher and the driver and server it started are gone
        assert launched.proc.poll() is not None
        # (zombies init has not reaped yet are not running: a loaded CI machine shows them)
        assert live_group_members(launched.proc.pid) == []


@pytest.fixture()
def raw(policy_env):
    env = policy_env.unwrapped
    assert isinstance(env, FrankaEnv)
    return env


class ConfirmAfter:
    """An operator device whose "confirm_reset" control is pressed from the `presses`-th read on."""

    def __init__(self, presses: int):
        self.reads, self.presses = 0, presses

    def read(self) -> DeviceState:
        self.reads += 1
        if self.reads >= self.presses:
            return DeviceState(np.zeros(7, np.float32), ("confirm_reset",))
        return IDLE


def call_trigger(domain_id: int, service: str) -> str:
    """Call one of the simulated driver's std_srvs/Trigger services, from a node on the
    rig's domain."""
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions
    from std_srvs.srv import Trigger

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
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
def test_contract_pacing_and_safety_box(raw):
    sim = gym.make("serl/PandaPickCube-v0").unwrapped
    assert raw.observation_space == sim.observation_space and raw.action_space == sim.action_space
    obs, info = raw.reset(seed=0)
    check_info(info)
    assert raw.observation_space.contains(obs)
    assert set(info) == {"succeed", "timestamps"}
    assert set(info["timestamps"]) == {"state", "front", "wrist"}
    for name in ("front", "wrist"):
        assert obs["images"][name].std() > 5  # a rendered scene, not a blank frame
        assert time.monotonic() - info["timestamps"][name] < raw.rig.control.max_frame_age_s + 0.5
    with pytest.raises(ValueError, match=r"NaN or infinity at index \[2\]"):
        raw.step(np.array([0, 0, np.nan, 0, 0, 0, 0], np.float32))
    start = time.monotonic()
    up = np.array([0, 0, 1, 0, 0, 0, 1], np.float32)  # straight up, past the top of the box
    for _ in range(12):
        obs, reward, terminated, truncated, info = raw.step(up)
        check_info(info)
        pos, quat = raw.last_target[:3], raw.last_target[3:]
        # clipped in the env, before the server
        assert inside(pos, quat, raw.limits), raw.last_target
    elapsed = time.monotonic() - start
    assert set(info) >= {"succeed", "gripper_changed", "safety_hold", "timestamps"}
    assert info["gripper_changed"] is False
    assert raw.observation_space.contains(obs) and reward == 0.0 and not terminated
    # paced to the control period (loaded CPU)
    assert 12 * raw.period - 0.02 < elapsed < 12 * raw.period + 1.0
    # stopped at the box top
    assert obs["state"]["tcp_pose"][2] == pytest.approx(raw.limits.xyz_high[2], abs=0.02)
    assert math.isfinite(raw.loop["rtt_s"]) and raw.loop["rtt_s"] < 0.5
    assert raw.loop["obs_age_s"] >= 0
    assert raw.render().shape == (128, 256, 3)


@pytest.mark.timeout(180)
def test_scripted_operator_lifts_the_cube_through_the_whole_stack(policy_env, raw):
    successes, lengths = 0, []
    for episode in range(10):
        policy_env.reset(seed=episode)
        terminated = truncated = False
        steps = 0
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = policy_env.step(np.zeros(7, np.float32))
            assert info["intervened"] and obs["front"].shape == (128, 128, 3)
            assert obs["state"].shape == (19,)
            steps += 1
        successes += bool(info["succeed"] and terminated and reward == 1.0)
        lengths.append(steps)
    assert successes >= 9, f"{successes}/10 lifted (episode lengths {lengths})"


@pytest.mark.timeout(120)
def test_reflex_truncates_the_episode_and_recovery_needs_confirmation(raw):
    asked = []
    scripted_yes = raw.confirm_recovery
    # build_env gave the scripted operator's env an immediate confirmation
    assert scripted_yes("test") is True
    try:
        raw.reset(seed=0)
        for _ in range(3):
            _, _, _, truncated, info = raw.step(np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32))
            assert not truncated and "fault" not in info
        call_trigger(raw.domain_id, f"{raw.rig.ros.sim_namespace}/inject_reflex")
        for _ in range(20):  # the fault reaches the server through the driver's mode topic
            obs, reward, terminated, truncated, info = raw.step(
                np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32))
            if truncated:
                break
        assert truncated and not terminated and reward == 0.0 and "reflex" in info["fault"]
        assert raw.observation_space.contains(obs)
        raw.confirm_recovery = None
        with pytest.raises(RobotFault, match="recovery needs an operator's confirmation"):
            raw.reset()
        raw.confirm_recovery = lambda reason: asked.append(reason) or False
        with pytest.raises(RobotFault, match="the operator did not confirm recovery"):
            raw.reset()
        assert raw.client.get_state()["mode"] == "fault"  # nothing recovered without the operator
        device = ConfirmAfter(presses=3)
        raw.confirm_recovery = device_confirmation(device, poll_s=0.01, timeout_s=5.0)
        obs, info = raw.reset(seed=1)
        assert device.reads == 3 and len(asked) == 1 and "reflex" in asked[0]
        state = raw.client.get_state()
        # hold: the watchdog, no command yet
        assert state["mode"] in ("ok", "hold") and not state["fault"]
        _, _, _, truncated, info = raw.step(np.zeros(7, np.float32))
        assert not truncated and "fault" not in info
    finally:
        raw.confirm_recovery = scripted_yes


@pytest.mark.timeout(10)
def test_device_confirmation_times_out_without_the_button():
    confirm = device_confirmation(ConfirmAfter(presses=10**9), poll_s=0.01, timeout_s=0.2)
    start = time.monotonic()
    assert confirm("user_stop") is False and 0.2 <= time.monotonic() - start < 1.0


@pytest.mark.timeout(10)
def test_rig_camera_size_must_match_the_observation(tmp_path):
    import yaml

    raw_rig = yaml.safe_load(open("hardware_configs/sim_panda.yaml"))
    raw_rig["cameras"]["wrist"]["size"] = [64, 64]
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(raw_rig))
    cfg = dataclasses.replace(experiments.load("sim_pick_cube_ros").env,
                              hardware_config=str(tmp_path / "rig.yaml"))
    with pytest.raises(ValueError,
                       match=r"cameras.wrist.size \(64, 64\) in .* must be \[128, 128\]"):
        FrankaEnv(cfg)
    with pytest.raises(ValueError, match="camera 'side' is not in"):
        FrankaEnv(dataclasses.replace(cfg, cameras=("front", "side")))


def server_pid(raw: FrankaEnv) -> int:
    """The robot server process the env's launcher started."""
    children = subprocess.run(["pgrep", "-P", str(raw.sim_rig.proc.pid)], capture_output=True,
                              text=True).stdout
    for pid in children.split():
        if b"robot_servers.franka_server" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return int(pid)
    raise AssertionError("no robot server among the launcher's children")


@pytest.mark.timeout(120)
def test_transient_errors_truncate_and_reset_retries_a_bounded_number_of_times(raw):
    cfg = raw.cfg
    raw.reset(seed=0)
    server, timeout = server_pid(raw), raw.client.timeout_s
    try:
        # short server stalls (under the rig's 1 s state timeout) are enough
        raw.client.timeout_s = 0.3
        os.kill(server, signal.SIGSTOP)
        try:
            obs, reward, terminated, truncated, info = raw.step(np.zeros(7, np.float32))
        finally:
            os.kill(server, signal.SIGCONT)
        assert truncated and not terminated and reward == 0.0
        assert raw.observation_space.contains(obs)
        assert info["error"].startswith("RobotTimeout: ")
        assert "did not answer 'set_pose'" in info["error"]
        raw.cfg = dataclasses.replace(cfg, reset_retries=1, reset_retry_wait_s=0.05)
        os.kill(server, signal.SIGSTOP)
        try:
            with pytest.raises(RigUnavailable,
                               match="reset failed 2 times in a row; last error: robot server"):
                raw.reset()
        finally:
            os.kill(server, signal.SIGCONT)
        raw.cfg = dataclasses.replace(cfg, reset_retries=3, reset_retry_wait_s=0.2)
        os.kill(server, signal.SIGSTOP)
        resume = threading.Timer(0.4, os.kill, (server, signal.SIGCONT))
        resume.start()  # the server is back before the second attempt
        try:
            obs, info = raw.reset(seed=1)
        finally:
            resume.join()
            os.kill(server, signal.SIGCONT)
        assert raw.observation_space.contains(obs) and "error" not in info
        camera = raw.cameras.cameras["wrist"]
        camera.max_frame_age_s = 1e-9  # every frame is now too old: the camera refuses it
        try:
            obs, _, _, truncated, info = raw.step(np.zeros(7, np.float32))
        finally:
            camera.max_frame_age_s = raw.rig.control.max_frame_age_s
        assert truncated and info["error"].startswith("StaleFrameError: camera 'wrist'")
        assert raw.observation_space.contains(obs)
        raw.reset(seed=2)
        _, _, _, truncated, info = raw.step(np.zeros(7, np.float32))
        assert not truncated and "error" not in info
    finally:
        raw.cfg = cfg
        if raw.client is not None:
            raw.client.timeout_s = timeout


@pytest.mark.timeout(90)
def test_a_fault_during_a_reset_is_recovered_and_the_reset_done_again(raw):
    """A reflex on the way back (or a lost connection) interrupts the reset's move: reset()
    recovers after the operator's confirmation (here the scripted yes) and resets again, instead
    of ending the actor."""
    asked, scripted_yes = [], raw.confirm_recovery
    raw.reset(seed=0)
    import rclpy  # noqa: F401  (imported here, call_trigger in the timer takes ~0.3 s, not ~3)
    from std_srvs.srv import Trigger  # noqa: F401

    corner = raw.rig.safety.box_max  # ~2.3 s back to the reset pose from there
    raw.client.reset(pose=np.array([*corner, *raw.rig.reset.tcp_quat]), timeout_s=20.0)
    reflex = threading.Timer(0.2, call_trigger,
                             (raw.domain_id, f"{raw.rig.ros.sim_namespace}/inject_reflex"))
    raw.confirm_recovery = lambda reason: asked.append(reason) or True
    try:
        reflex.start()
        obs, info = raw.reset(seed=1)
    finally:
        reflex.join()
        raw.confirm_recovery = scripted_yes
    assert len(asked) == 1 and "reflex" in asked[0]
    assert raw.observation_space.contains(obs) and raw.client.get_state()["mode"] != "fault"
    np.testing.assert_allclose(obs["state"]["tcp_pose"][:3], raw.rig.reset.tcp_xyz,
                               atol=raw.rig.reset.xy_range + raw.rig.reset.settle_tolerance)


@pytest.mark.timeout(60)
def test_a_reset_that_outlived_its_request_is_waited_for_not_raised(raw):
    cfg = raw.cfg
    raw.reset(seed=0)
    # a long move, so the first reset is still running at the retry
    far = raw.rig.reset.tcp_xyz[0] + 0.15
    pose = np.array([far, 0.0, 0.3, *raw.rig.reset.tcp_quat])
    with pytest.raises(RobotTimeout):  # our request gives up, the server's reset goes on
        raw.client.reset(pose=pose, timeout_s=0.05)
    raw.cfg = dataclasses.replace(cfg, reset_retries=40, reset_retry_wait_s=0.1)
    try:
        obs, info = raw.reset(seed=3)  # "busy: reset in progress" at first, then done
    finally:
        raw.cfg = cfg
    assert raw.observation_space.contains(obs) and "error" not in info


@pytest.mark.timeout(60)
def test_reset_pose_is_clipped_into_the_box_and_cone(raw):
    rig = raw.rig
    # near the box's corner, randomised past its walls and past the yaw range
    wide = rig.reset.model_copy(update={"tcp_xyz": (0.65, 0.2, 0.2), "xy_range": 0.2,
                                        "yaw_range": 3.0})
    draws = [wide.draw_pose(np.random.default_rng(seed), raw.limits) for seed in range(50)]
    assert all(inside(p[:3], p[3:], raw.limits) for p in draws)
    assert max(p[0] for p in draws) == pytest.approx(raw.limits.xyz_high[0])  # some were clipped
    tilts = [abs(cone_coordinates(p[3:], raw.limits)[1]) for p in draws]
    assert max(tilts) == pytest.approx(math.pi / 2)
    sent = []
    reset = raw.client.reset
    raw.rig = rig.model_copy(update={"reset": wide})
    raw.client.reset = lambda **kw: sent.append(kw["pose"]) or reset(**kw)
    try:
        for seed in (3, 4):
            raw.reset(seed=seed)
    finally:
        raw.rig = rig
        del raw.client.reset
    assert len(sent) == 2 and all(inside(p[:3], p[3:], raw.limits) for p in sent)


@pytest.mark.timeout(60)
def test_a_pause_between_steps_restarts_the_period_clock(raw):
    raw.reset(seed=0)
    raw.step(np.zeros(7, np.float32))
    overruns = raw.overruns
    # the operator paused (intervention wrapper), longer than pause_periods
    time.sleep(8 * raw.period)
    start = time.monotonic()
    raw.step(np.zeros(7, np.float32))
    assert raw.overruns == overruns and raw.loop["overrun_s"] == 0.0
    # a full period from the step after the pause
    assert time.monotonic() - start >= raw.period - 0.01
    raw.step(np.zeros(7, np.float32))
    assert raw.overruns == overruns

