"""`PandaSimEnv`: the environment contract of DESIGN.md (`serl.envs.contract`) on the MuJoCo Panda;
also the scripted operator's `Scene` (`serl.envs.sim.scene`)."""

from __future__ import annotations

import dataclasses
import time

import gymnasium as gym
import numpy as np

from serl import geometry as g
from serl.envs.contract import (
    ACTION_SPACE,
    StepInfo,
    gripper_command,
    observation_space,
    validate_action,
)
from serl.envs.sim.arm import PandaSim
from serl.envs.sim.config import SimEnvConfig, task_defaults
from serl.envs.sim.render import CameraRenderer
from serl.envs.sim.scene import SimScene
from serl.envs.sim.tasks import TASKS
from serl.robot.safety import clip_target


class PandaSimEnv(SimScene, gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, cfg: SimEnvConfig, render_mode: str | None = None):
        self.cfg = cfg
        self.task = TASKS[cfg.task](cfg)
        self.sim = PandaSim(self.task.objects, cfg.physics_dt, cfg.gains)
        self.period = 1.0 / cfg.control_hz
        self.render_mode = render_mode
        self.observation_space = observation_space(cfg)
        self.action_space = ACTION_SPACE
        self._renderer = (
            CameraRenderer(self.sim.model, cfg.cameras, cfg.image_size) if cfg.image_obs else None
        )
        self._steps = 0
        self._gripper_closed = False
        self._next_deadline = 0.0
        self.commanded_pose = (np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))

    # ---------- gymnasium API ----------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cfg, rng = self.cfg, self.np_random
        xy = np.asarray(cfg.reset_tcp_xyz[:2]) + rng.uniform(-1, 1, 2) * cfg.reset_tcp_xy_range
        yaw = rng.uniform(-1, 1) * cfg.reset_tcp_yaw_range
        quat = g.quat_mul(g.euler_to_quat([0.0, 0.0, yaw]), g.GRIPPER_DOWN_XYZW)
        pos = np.array([xy[0], xy[1], cfg.reset_tcp_xyz[2]])
        self.sim.reset_arm(pos, quat, self.task.gripper_open_at_reset)
        self.task.reset(self.sim, rng)
        self.sim.advance(self.period)  # let contacts (a held peg, a cube on the table) settle
        self._gripper_closed = self.task.gripper_open_at_reset < 0.5
        self.commanded_pose = self.sim.tcp_pose()
        self._steps = 0
        self._next_deadline = time.monotonic() + self.period
        obs, stamps = self._observe()
        info: StepInfo = {"succeed": self.task.success(self.sim), "timestamps": stamps}
        return obs, info

    def step(self, action):
        a = validate_action(action)
        cfg = self.cfg
        pos, quat = self.sim.tcp_pose()
        target_pos = pos + a[:3] * cfg.action_scale_xyz
        target_quat = g.quat_mul(g.euler_to_quat(a[3:6] * cfg.action_scale_rot), quat)
        self.commanded_pose = clip_target(target_pos, target_quat, pos, quat, cfg.safety)
        clip_m = float(np.linalg.norm(self.commanded_pose[0] - target_pos))
        self.sim.set_target(*self.commanded_pose)
        changed = self._apply_gripper(a[6])
        if cfg.realtime:
            self._pace()
        self.sim.advance(self.period)
        self._steps += 1
        obs, stamps = self._observe()
        success = self.task.success(self.sim)
        if cfg.reward == "sparse":
            reward, terminated = float(success), success
        else:
            reward, terminated = self.task.dense_reward(self.sim), False
        truncated = self._steps >= cfg.max_episode_steps and not terminated
        # No safety hold here (the robot server's wrench hold); the key keeps the info contract of
        # FrankaEnv.
        info: StepInfo = {
            "succeed": success,
            "gripper_changed": changed,
            "safety_hold": None,
            "safety_clip_m": clip_m,
            "timestamps": stamps,
        }
        return obs, reward, terminated, truncated, info

    def render(self):
        """The cameras side by side (uint8); a state-only env sets its renderer up on the first call
        (videos)."""
        if self._renderer is None:
            self._renderer = CameraRenderer(self.sim.model, self.cfg.cameras, self.cfg.image_size)
        frames = self._renderer.render(self.sim.data)
        return np.concatenate([frames[c] for c in self.cfg.cameras], axis=1)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ---------- internals ----------
    def _apply_gripper(self, command: float) -> bool:
        """Apply the gripper semantics; returns whether the command changed the gripper's state."""
        if self.cfg.gripper_locked:
            return False
        close = gripper_command(command)
        if close is None:
            return False
        changed = close != self._gripper_closed
        self._gripper_closed = close
        self.sim.set_gripper(0.0 if close else 1.0)
        return changed

    def _pace(self) -> None:
        delay = self._next_deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next_deadline = max(self._next_deadline + self.period, time.monotonic())

    def _observe(self) -> tuple[dict, dict]:
        sim = self.sim
        pos, quat = sim.tcp_pose()
        force, torque = sim.tcp_wrench()
        state = {
            "tcp_pose": np.concatenate([pos, quat]).astype(np.float32),
            "tcp_vel": sim.tcp_twist().astype(np.float32),
            "gripper_pose": np.array([sim.gripper_opening()], np.float32),
            "tcp_force": force.astype(np.float32),
            "tcp_torque": torque.astype(np.float32),
        }
        if self.cfg.object_pose:
            pos, quat = sim.object_pose(self.task.object_body)
            state["object_pose"] = np.concatenate(
                [pos, g.same_hemisphere(quat, np.array([0, 0, 0, 1.0]))]
            ).astype(np.float32)
        stamps = {"state": time.monotonic()}
        obs = {"state": state}
        if self.cfg.image_obs:
            obs["images"] = self._renderer.render(sim.data)
            now = time.monotonic()
            stamps.update({c: now for c in self.cfg.cameras})
        return obs, stamps


def make_sim_env(
    task: str, config: SimEnvConfig | None = None, render_mode: str | None = None, **overrides
) -> PandaSimEnv:
    """gymnasium entry point: a task's defaults (or the given config) with field overrides, e.g.
    image_obs=False."""
    cfg = config if config is not None else task_defaults(task)
    if cfg.task != task:
        raise ValueError(f"config is for task {cfg.task!r} but the env id is for {task!r}")
    fields = {f.name for f in dataclasses.fields(SimEnvConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown env option(s) {sorted(unknown)}; valid: {sorted(fields)}")
    return PandaSimEnv(dataclasses.replace(cfg, **overrides), render_mode=render_mode)
