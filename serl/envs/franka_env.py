"""`FrankaEnv` (`serl/Franka-v0`): the environment contract of DESIGN.md on a robot server (a real Franka, or the
simulated driver behind the same server), so wrappers, policies and tests written for the simulated env work here.

One step: validate and scale the action, clip the target to the rig's safety box and cone (the server clips again),
send it, pace to the control period (the one place the loop sleeps; overruns are counted and reported), then
observe: robot state and camera frames, each with its capture time; frames older than the rig's maximum frame age
are an error. A server fault truncates the episode; the next reset asks the operator to confirm before `recover`.
A transient failure (the server did not answer in time, a stale or frozen camera) truncates the episode too, with
`info["error"]`; reset retries a bounded number of times, then raises `RigUnavailable`. A long gap between steps
(the operator paused) restarts the period clock instead of counting as an overrun.
Nothing connects until the first reset, so a learner can build the env for its spaces alone.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import time
import weakref
from pathlib import Path

import gymnasium as gym
import numpy as np

from serl import geometry as g
from serl.cameras.base import CameraError
from serl.cameras.realsense import wall_to_monotonic
from serl.envs.franka_config import Confirm, FrankaEnvConfig
from serl.envs.sim.env import ACTION_SPACE, GRIPPER_CLOSE, GRIPPER_OPEN, observation_space, validate_action
from serl.robot.client import RobotBusy, RobotClient, RobotFault, RobotTimeout
from serl.robot.hardware_config import load_hardware_config
from serl.robot.safety import clip_target

log = logging.getLogger(__name__)
_OPEN: weakref.WeakSet = weakref.WeakSet()  # connected envs, closed at interpreter exit if their owner forgot
# Worth another try: a stalled server or camera, or a reset still running after our request timed out (a
# refusal is not).
TRANSIENT = (RobotTimeout, RobotBusy, CameraError)


class RigUnavailable(RuntimeError):
    """The robot server or a camera kept failing through every reset attempt."""


@atexit.register
def _close_open_envs() -> None:
    """Cameras' ROS threads and a launched simulated rig must not outlive the process (or abort its exit)."""
    for env in list(_OPEN):
        env.close()


class FrankaEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, cfg: FrankaEnvConfig, confirm_recovery: Confirm | None = None, render_mode: str | None = None):
        self.cfg = cfg
        self.rig = load_hardware_config(cfg.hardware_config)
        for name in cfg.cameras if cfg.image_obs else ():
            if name not in self.rig.cameras:
                raise ValueError(f"camera {name!r} is not in {cfg.hardware_config} (cameras: "
                                 f"{', '.join(self.rig.cameras) or 'none'})")
            if tuple(self.rig.cameras[name].size) != (cfg.image_size, cfg.image_size):
                raise ValueError(f"cameras.{name}.size {self.rig.cameras[name].size} in {cfg.hardware_config} "
                                 f"must be [{cfg.image_size}, {cfg.image_size}] (the observation's image size)")
        self.limits = self.rig.safety.limits()
        self.period = 1.0 / self.rig.control.rate_hz
        self.confirm_recovery = confirm_recovery  # asked before recovering from a fault; None: reset refuses
        self.render_mode = render_mode
        self.observation_space = observation_space(cfg.cameras, cfg.image_size, cfg.image_obs)
        self.action_space = ACTION_SPACE
        self.client: RobotClient | None = None
        self.cameras = None
        self.overruns = 0  # control periods that ended late (the step took longer than the period)
        self.loop: dict[str, float] = {}  # last step's timing: obs_age_s (at publish), rtt_s, period_s, overrun_s
        self._episodes, self._steps = 0, 0
        self._state: dict | None = None
        self._obs: dict | None = None
        self._info_stamps: dict[str, float] = {}  # capture times of the last observation (monotonic clock)
        self._gripper_closed = False
        self._deadline = 0.0
        self._last_tick = 0.0
        self._fault: str | None = None
        self.task_info: dict | None = None
        self.last_target: np.ndarray | None = None  # the last target sent, after the env's own safety clip
        self._sim_rig = None  # the launched simulated rig (launch_sim)
        self._domain_id = cfg.ros_domain_id

    # ---------- gymnasium API ----------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        attempts, attempt = self.cfg.reset_retries + 1, 1
        while True:
            try:
                return self._reset_once()
            except TRANSIENT as err:
                if attempt == attempts:
                    raise RigUnavailable(f"reset failed {attempts} times in a row; last error: {err}") from err
                log.warning("reset attempt %d of %d failed, retrying in %.1f s: %s", attempt, attempts,
                            self.cfg.reset_retry_wait_s, err)
                if isinstance(err, CameraError) and self.cameras is not None:
                    self.cameras.close()  # reopened by the next attempt's _connect
                    self.cameras = None
                time.sleep(self.cfg.reset_retry_wait_s)
                attempt += 1

    def _reset_once(self):
        self._connect()
        state = self.client.get_state()
        if state["mode"] == "fault" or self._fault is not None:
            self._recover(str(state.get("fault") or self._fault))
        rs = self.rig.reset
        pose = rs.draw_pose(self.np_random, self.limits)  # clipped into the box and cone, like every target
        joint = self.cfg.joint_reset_every > 0 and self._episodes % self.cfg.joint_reset_every == 0
        if not self.cfg.gripper_locked:
            self.client.gripper("open")
            self._gripper_closed = False
        reply = self.client.reset(joint_reset=joint and rs.joint_reset is not None, pose=pose,
                                  timeout_s=self.rig.robot.reset_timeout_s, task=self.rig.sim is not None)
        self.task_info = reply.get("task")  # sim rigs: where the driver placed the task's object
        self._episodes += 1
        self._steps = 0
        obs, info = self._observe()
        self.restart_clock()
        return obs, info

    def step(self, action):
        a = validate_action(action)
        if time.monotonic() - self._last_tick > self.cfg.pause_periods * self.period:
            self.restart_clock()  # the caller paused (operator, reset wait): not an overrun of this step
        state, ctl = self._state, self.rig.control
        pos, quat = state["tcp_pose"][:3], state["tcp_pose"][3:]
        target_pos = pos + a[:3] * ctl.action_scale_xyz
        target_quat = g.quat_mul(g.euler_to_quat(a[3:6] * ctl.action_scale_rot), quat)
        target = self.last_target = np.concatenate(clip_target(target_pos, target_quat, pos, quat, self.limits))
        obs_time = min(self._info_stamps.values())
        try:
            sent = time.monotonic()
            self.loop["obs_age_s"] = sent - obs_time
            hold = self.client.set_pose(target).get("hold")  # a safety hold of the server dropped this command
            self.loop["rtt_s"] = time.monotonic() - sent
            changed = self._apply_gripper(a[6])
        except RobotFault as err:
            return self._truncate_on_fault(str(err))
        except TRANSIENT as err:
            return self._truncate_on_error(err)
        self._pace()
        self._steps += 1
        try:
            obs, info = self._observe()
        except TRANSIENT as err:
            return self._truncate_on_error(err)
        if self._state["mode"] == "fault":
            return self._truncate_on_fault(str(self._state.get("fault")), obs, info)
        success = bool(info["succeed"])
        truncated = self._steps >= self.cfg.max_episode_steps and not success
        info["gripper_changed"], info["safety_hold"] = changed, hold
        return obs, float(success), success, truncated, info

    def restart_clock(self) -> None:
        """Start the control period afresh from now (after a pause the caller knows about)."""
        self._deadline = self._last_tick = time.monotonic()

    def observe(self) -> dict:
        """A fresh observation without acting (the intervention wrapper calls it after the operator's confirmation)."""
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

            self._sim_rig = SimRigProcess(self.cfg.hardware_config)
            self.rig = load_hardware_config(self._sim_rig.config_path)  # the same rig on the launch's own port
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

            self.cameras = open_cameras(self.rig.cameras, self.rig.control.max_frame_age_s, self.cfg.cameras,
                                        self._domain_id)

    def _observe(self) -> tuple[dict, dict]:
        s = self._state = self.client.get_state()
        state = {
            "tcp_pose": s["tcp_pose"].astype(np.float32),
            "tcp_vel": s["tcp_vel"].astype(np.float32),
            "gripper_pose": np.array([np.clip(float(s["gripper_pos"]), 0.0, 1.0)], np.float32),
            "tcp_force": s["tcp_force"].astype(np.float32),
            "tcp_torque": s["tcp_torque"].astype(np.float32),
        }
        stamps = {"state": wall_to_monotonic(float(s["stamp"]))}
        obs = {"state": state}
        if self.cameras is not None:
            obs["images"], frame_stamps = self.cameras.read()  # raises on a stale or frozen camera
            stamps.update(frame_stamps)
        self._obs, self._info_stamps = obs, stamps
        info = {"succeed": bool(s.get("succeed") or False), "timestamps": dict(stamps)}
        if s.get("succeed") is None:  # a real rig has no success signal: False above means "not known"
            info["succeed_known"] = False
        return obs, info

    def _apply_gripper(self, command: float) -> bool:
        if self.cfg.gripper_locked or GRIPPER_CLOSE < command < GRIPPER_OPEN:
            return False
        close = command <= GRIPPER_CLOSE
        if close == self._gripper_closed:
            return False
        self.client.gripper("close" if close else "open")
        self._gripper_closed = close
        return True

    def _pace(self) -> None:
        """Sleep to the end of the control period; a late step is an overrun (counted, logged, in `loop`)."""
        self._deadline += self.period
        now = time.monotonic()
        if now < self._deadline:
            time.sleep(self._deadline - now)
            self.loop["overrun_s"] = 0.0
        else:
            self.overruns += 1
            self.loop["overrun_s"] = now - self._deadline
            if self.overruns in (1, 10, 100) or self.overruns % 1000 == 0:
                log.warning("control period overrun by %.1f ms (%d overruns so far)", 1e3 * (now - self._deadline),
                            self.overruns)
            self._deadline = now  # start the next period now, never try to catch up with a burst of commands
        tick = time.monotonic()
        self.loop["period_s"], self._last_tick = tick - self._last_tick, tick

    def _truncate_on_fault(self, reason: str, obs: dict | None = None, info: dict | None = None):
        """The arm stopped (reflex, user stop, controller error): end the episode; reset() recovers."""
        log.error("robot fault, truncating the episode: %s", reason)
        self._fault = reason
        if obs is None:
            try:
                obs, info = self._observe()
            except TRANSIENT as err:
                log.warning("no fresh observation after the fault (%s); the last one stands in", err)
                obs, info = self._last_observation()
        info.update(fault=reason, gripper_changed=False)
        return obs, 0.0, False, True, info

    def _truncate_on_error(self, err: Exception):
        """The server or a camera failed for now: end the episode on the last observation; reset() retries."""
        log.error("%s, truncating the episode: %s", type(err).__name__, err)
        obs, info = self._last_observation()
        info.update(error=f"{type(err).__name__}: {err}", gripper_changed=False)
        return obs, 0.0, False, True, info

    def _last_observation(self) -> tuple[dict, dict]:
        return self._obs, {"succeed": False, "succeed_known": False, "timestamps": dict(self._info_stamps)}

    def _recover(self, reason: str) -> None:
        if self.confirm_recovery is None:
            raise RobotFault(f"robot is in fault ({reason}); recovery needs an operator's confirmation and this env "
                             "has no confirm_recovery")
        if not self.confirm_recovery(reason):
            raise RobotFault(f"robot is in fault ({reason}); the operator did not confirm recovery")
        self.client.recover()
        self._fault = None


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
        raise FileNotFoundError(f"hardware config {cfg.hardware_config!r} not found (relative paths are from "
                                f"{Path.cwd()})")
    return FrankaEnv(cfg, confirm_recovery, render_mode)
