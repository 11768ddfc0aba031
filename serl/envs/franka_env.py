"""`FrankaEnv` (`serl/Franka-v0`): the environment contract of DESIGN.md (`serl.envs.contract`) on a
robot server (a real Franka, or the simulated driver behind the same server), so wrappers, policies
and tests written for the simulated env work here. On a simulated rig it is also the scripted
operator's `Scene` (`serl.envs.franka_scene`).

One step: validate and scale the action, clip the target to the rig's safety box and cone (the
server clips again), send it, pace to the control period (`serl.envs.franka_loop.ControlClock`, the
one place the loop sleeps), then observe: robot state and camera frames, each with its capture time;
frames older than the rig's maximum frame age are an error. A server fault truncates the episode;
the next reset asks the operator to confirm before `recover`. A transient failure (the server did
not answer in time, a stale or frozen camera) truncates the episode too, with `info["error"]`; reset
retries a bounded number of times, then raises `RigUnavailable`. Nothing connects until the first
reset; the spaces come from the config alone (`serl.envs.contract`).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import gymnasium as gym
import numpy as np

from serl import geometry as g
from serl.cameras.base import CameraError
from serl.cameras.clock import wall_to_monotonic
from serl.envs.contract import (
    ACTION_SPACE,
    StepInfo,
    gripper_command,
    observation_space,
    validate_action,
)
from serl.envs.franka_config import Confirm, FrankaEnvConfig, check_against_rig
from serl.envs.franka_faults import TRANSIENT, FaultHandling, ResetInterrupted
from serl.envs.franka_loop import ControlClock
from serl.envs.franka_scene import FrankaScene
from serl.robot.client import RobotClient, RobotFault, RobotUnsettled
from serl.robot.hardware_config import load_hardware_config
from serl.robot.safety import clip_target

log = logging.getLogger(__name__)
# connected envs, closed at interpreter exit if their owner forgot
_OPEN: weakref.WeakSet = weakref.WeakSet()


class RigUnavailable(RuntimeError):
    """The robot server or a camera kept failing through every reset attempt."""


@atexit.register
def _close_open_envs() -> None:
    """Cameras' ROS threads and a launched simulated rig must not outlive the process (or abort its
    exit)."""
    for env in list(_OPEN):
        env.close()


class FrankaEnv(FaultHandling, FrankaScene, gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, cfg: FrankaEnvConfig, confirm_recovery: Confirm | None = None,
                 render_mode: str | None = None):
        self.cfg = cfg
        self.rig = load_hardware_config(cfg.hardware_config)
        check_against_rig(cfg, self.rig)
        self.limits = self.rig.safety.limits()
        self.period = 1.0 / self.rig.control.rate_hz
        # asked before recovering from a fault; None: reset refuses
        self.confirm_recovery = confirm_recovery
        self.render_mode = render_mode
        self.observation_space = observation_space(cfg)
        self.action_space = ACTION_SPACE
        self.client: RobotClient | None = None
        self.cameras = None
        self.clock = ControlClock(self.period, cfg.pause_periods)
        self._episodes, self._steps = 0, 0
        self._state: dict | None = None
        self._obs: dict | None = None
        # capture times of the last observation (monotonic clock)
        self._info_stamps: dict[str, float] = {}
        self._gripper_closed = False
        self._fault: str | None = None
        self.task_info: dict | None = None
        # the last target sent, after the env's own safety clip
        self.last_target: np.ndarray | None = None
        self._sim_rig = None  # the launched simulated rig (launch_sim)
        self._domain_id = cfg.ros_domain_id

    # ---------- public state (read only) ----------
    @property
    def robot_state(self) -> Mapping:
        """The robot server's latest state (tcp_pose, gripper_pos, mode, ...), read only; empty
        before the first reset."""
        return MappingProxyType(self._state if self._state is not None else {})

    @property
    def gripper_closed(self) -> bool:
        """The last gripper command sent was "close"."""
        return self._gripper_closed

    @property
    def overruns(self) -> int:
        """Control periods that ended late (the step took longer than the period)."""
        return self.clock.overruns

    @property
    def loop(self) -> dict[str, float]:
        """The last step's timing: obs_age_s (at publish), rtt_s, period_s, overrun_s."""
        return self.clock.loop

    @property
    def sim_rig(self):
        """The simulated rig this env launched (`launch_sim`), else None."""
        return self._sim_rig

    @property
    def domain_id(self) -> int | None:
        """The ROS 2 domain of the rig's ROS cameras and services."""
        return self._domain_id

    # ---------- gymnasium API ----------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        attempts, attempt, unsettled = self.cfg.reset_retries + 1, 1, False
        while True:
            try:
                return self._reset_once(joint_reset=unsettled)
            except (*TRANSIENT, ResetInterrupted) as err:
                # A reset that cannot settle (a joint near its limit after drifting in the
                # nullspace) is retried as a joint reset, where the rig has one.
                unsettled = unsettled or isinstance(err, RobotUnsettled)
                if attempt == attempts:
                    raise RigUnavailable(f"reset failed {attempts} times in a row; last error: "
                                         f"{err}") from err
                log.warning("reset attempt %d of %d failed, retrying in %.1f s: %s", attempt,
                            attempts, self.cfg.reset_retry_wait_s, err)
                if isinstance(err, CameraError) and self.cameras is not None:
                    self.cameras.close()  # reopened by the next attempt's _connect
                    self.cameras = None
                time.sleep(self.cfg.reset_retry_wait_s)
                attempt += 1

    def _reset_once(self, joint_reset: bool = False):
        self._connect()
        state = self.client.get_state()
        if state["mode"] == "fault" or self._fault is not None:
            self._recover(str(state.get("fault") or self._fault))
        rs = self.rig.reset
        # clipped into the box and cone, like every target
        pose = rs.draw_pose(self.np_random, self.limits)
        every = self.cfg.joint_reset_every
        joint = joint_reset or (every > 0 and self._episodes % every == 0)
        if not self.cfg.gripper_locked:
            self.client.gripper("open")
            self._gripper_closed = False
        try:
            reply = self.client.reset(joint_reset=joint and rs.joint_reset is not None, pose=pose,
                                      timeout_s=self.rig.robot.reset_timeout_s,
                                      task=self.rig.sim is not None)
        except RobotFault as err:  # the next attempt recovers, then resets
            self._fault = str(err)
            raise ResetInterrupted(str(err)) from err
        self.task_info = reply.get("task")  # sim rigs: where the driver placed the task's object
        self._episodes += 1
        self._steps = 0
        obs, info = self._observe()
        self.restart_clock()
        return obs, info

    def step(self, action):
        a = validate_action(action)
        self.clock.begin_step()
        state, ctl = self._state, self.rig.control
        pos, quat = state["tcp_pose"][:3], state["tcp_pose"][3:]
        target_pos = pos + a[:3] * ctl.action_scale_xyz
        target_quat = g.quat_mul(g.euler_to_quat(a[3:6] * ctl.action_scale_rot), quat)
        clipped = clip_target(target_pos, target_quat, pos, quat, self.limits)
        target = self.last_target = np.concatenate(clipped)
        clip_m = float(np.linalg.norm(clipped[0] - target_pos))
        obs_time = min(self._info_stamps.values())
        try:
            sent = time.monotonic()
            self.loop["obs_age_s"] = sent - obs_time
            # a safety hold of the server dropped this command
            hold = self.client.set_pose(target).get("hold")
            self.loop["rtt_s"] = time.monotonic() - sent
            changed = self._apply_gripper(a[6])
        except RobotFault as err:
            return self._truncate_on_fault(str(err))
        except TRANSIENT as err:
            return self._truncate_on_error(err)
        self.clock.pace()
        self._steps += 1
        try:
            obs, info = self._observe()
        except TRANSIENT as err:
            return self._truncate_on_error(err)
        if self._state["mode"] == "fault":
            return self._truncate_on_fault(str(self._state.get("fault")), obs, info)
        success = bool(info["succeed"])
        truncated = self._steps >= self.cfg.max_episode_steps and not success
        info["gripper_changed"], info["safety_hold"], info["safety_clip_m"] = changed, hold, clip_m
        return obs, float(success), success, truncated, info

    def restart_clock(self) -> None:
        """Start the control period afresh from now (after a pause the caller knows about)."""
        self.clock.restart()

    def observe(self) -> dict:
        """A fresh observation without acting (the intervention wrapper calls it after the
        operator's confirmation)."""
        return self._observe()[0]

    def render(self):
        if self._obs is None or "images" not in self._obs:
            raise RuntimeError("render() needs image_obs=True and a reset")
        return np.concatenate([self._obs["images"][c] for c in self.cfg.cameras], axis=1)

    def close(self) -> None:
        _OPEN.discard(self)
        if self.cameras is not None:
            self.cameras.close()
            self.cameras = None
        if self.client is not None:
            try:
                self.client.release()
            except Exception as err:  # closing must not fail because the server went first
                log.info("robot server release on close: %s", err)
            self.client.close()
            self.client = None
        if self._sim_rig is not None:
            self._sim_rig.close()
            self._sim_rig = None

    # ---------- internals ----------
    def _connect(self) -> None:
        _OPEN.add(self)
        if self.cfg.launch_sim and self._sim_rig is None:
            from serl.envs.franka_launch import SimRigProcess

            cameras = self.cfg.cameras if self.cfg.image_obs else ()
            self._sim_rig = SimRigProcess(self.cfg.hardware_config, cameras)
            # the same rig on the launch's own port
            self.rig = load_hardware_config(self._sim_rig.config_path)
            self._domain_id = self._sim_rig.domain_id
        if self.client is None:
            r = self.rig.robot
            curve = None
            if r.curve_client_secret_key is not None:
                from serl.transport.keys import ActorCurve

                curve = ActorCurve(r.curve_client_secret_key, r.curve_server_public_key)
            self.client = RobotClient(r.address, timeout_s=r.request_timeout_s, curve=curve)
        if self.cameras is None and self.cfg.image_obs:
            from serl.cameras import open_cameras

            self.cameras = open_cameras(self.rig.cameras, self.rig.control.max_frame_age_s,
                                        self.cfg.cameras, self._domain_id)

    def _observe(self) -> tuple[dict, dict]:
        s = self._state = self.client.get_state()
        state = {
            "tcp_pose": s["tcp_pose"].astype(np.float32),
            "tcp_vel": s["tcp_vel"].astype(np.float32),
            "gripper_pose": np.array([np.clip(float(s["gripper_pos"]), 0.0, 1.0)], np.float32),
            "tcp_force": s["tcp_force"].astype(np.float32),
            "tcp_torque": s["tcp_torque"].astype(np.float32),
        }
        if self.cfg.object_pose:
            state["object_pose"] = self.observed_object_pose()
        stamps = {"state": wall_to_monotonic(float(s["stamp"]))}
        obs = {"state": state}
        if self.cameras is not None:
            obs["images"], frame_stamps = self.cameras.read()  # raises on a stale or frozen camera
            stamps.update(frame_stamps)
        self._obs, self._info_stamps = obs, stamps
        info: StepInfo = {"succeed": bool(s.get("succeed") or False), "timestamps": dict(stamps)}
        # a real rig has no success signal: False above means "not known"
        if s.get("succeed") is None:
            info["succeed_known"] = False
        return obs, info

    def _apply_gripper(self, command: float) -> bool:
        close = gripper_command(command)
        if self.cfg.gripper_locked or close is None or close == self._gripper_closed:
            return False
        self.client.gripper("close" if close else "open")
        self._gripper_closed = close
        return True


def make_franka_env(config: FrankaEnvConfig | None = None, render_mode: str | None = None,
                    confirm_recovery: Confirm | None = None, **overrides) -> FrankaEnv:
    """gymnasium entry point: the given config (or the default sim rig) with field overrides."""
    cfg = config if config is not None else FrankaEnvConfig()
    fields = {f.name for f in dataclasses.fields(FrankaEnvConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown env option(s) {sorted(unknown)}; valid: {sorted(fields)}")
    cfg = dataclasses.replace(cfg, **overrides)
    if not Path(cfg.hardware_config).is_file():
        raise FileNotFoundError(
            f"hardware config {cfg.hardware_config!r} not found (relative paths are from "
            f"{Path.cwd()})"
        )
    return FrankaEnv(cfg, confirm_recovery, render_mode)
