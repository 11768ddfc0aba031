"""This project's transitions as LeRobot features, by name.

A frame is an observation and the action taken from it, with what followed the action under
`next.*` (LeRobot's convention for reward and done). An episode of T transitions is T + 1 frames:
the last holds the observation after the last step (`serl.final_observation`, action zero, reward
zero), so the next observation of every transition is in the dataset and an import gives back the
same transitions. Project-specific provenance is under `serl.*`; LeRobot's policies read only
`observation.*` and `action`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serl.data.schema import Batch, TransitionSpec
from serl.datasets.lerobot_format import DEFAULT_FEATURES
from serl.envs.contract import (
    BASE_ACTION_KEY,
    euler_observation_space,
    flat_state_keys,
    observation_space,
    policy_gripper,
    policy_spaces,
)

STATE, IMAGES, ACTION = "observation.state", "observation.images.", "action"
# a base policy's action for the frame's observation (runs with `wrappers.base_policy`)
BASE = "observation.base_action"
REWARD, DONE, TERMINATED, TRUNCATED, SUCCESS = ("next.reward", "next.done", "next.terminated",
                                                "next.truncated", "next.success")
GRASP_PENALTY = "complementary_info.discrete_penalty"  # LeRobot's name for the grasp penalty
INTERVENED, POLICY_VERSION, CLASSIFIER_VERSION = ("serl.intervened", "serl.policy_version",
                                                  "serl.classifier_version")
TIMESTAMP, EPISODE_ID, STEP = "serl.timestamp", "serl.episode_id", "serl.step"
DEMO, FINAL = "serl.demo", "serl.final_observation"
# the components of each state entry, in the policy's state (poses as xyz + extrinsic xyz euler)
COMPONENTS = {
    "tcp_pose": ("x", "y", "z", "roll", "pitch", "yaw"),
    "tcp_vel": ("vx", "vy", "vz", "wx", "wy", "wz"),
    "tcp_force": ("x", "y", "z"), "tcp_torque": ("x", "y", "z"),
    "object_pose": ("x", "y", "z", "roll", "pitch", "yaw"),
}
# name -> (numpy dtype, shape, names) of every column but the state, the action and LeRobot's own
SCALARS: dict[str, tuple[str, list[int], list[str] | None]] = {
    REWARD: ("float32", [1], None), DONE: ("bool", [1], None), TERMINATED: ("bool", [1], None),
    TRUNCATED: ("bool", [1], None), SUCCESS: ("bool", [1], None),
    GRASP_PENALTY: ("float32", [1], ["discrete_penalty"]), INTERVENED: ("bool", [1], None),
    POLICY_VERSION: ("int64", [2], ["incarnation", "step"]),
    CLASSIFIER_VERSION: ("int32", [1], None), TIMESTAMP: ("float64", [1], None),
    EPISODE_ID: ("int64", [1], None), STEP: ("int32", [1], None), DEMO: ("bool", [1], None),
    FINAL: ("bool", [1], None),
}


def state_names(env_config) -> list[str]:
    """Names of the policy's state vector, entry by entry: `tcp_pose.x`, ..., `gripper_pose`."""
    space = euler_observation_space(observation_space(env_config))
    names: list[str] = []
    for key in flat_state_keys(space):
        n, parts = int(np.prod(space["state"][key].shape)), COMPONENTS.get(key, ())
        if n == 1:
            names.append(key)
        else:
            names += [f"{key}.{p}" for p in (parts if len(parts) == n else range(n))]
    return names


def action_names(config) -> list[str]:
    """Names of the policy's action entries: the arm axes of `wrappers.arm_axes` (in the policy's
    frame, scaled to [-1, 1]), then `gripper` unless the env locks it."""
    return list(config.wrappers.arm_axes) + (["gripper"] if policy_gripper(config.env) else [])


def control_rate(config) -> float:
    """Env steps per second: a simulated task's `env.control_hz`, a rig's `control.rate_hz`."""
    if hasattr(config.env, "control_hz"):
        return float(config.env.control_hz)
    from serl.robot.hardware_config import load_hardware_config

    return float(load_hardware_config(config.env.hardware_config).control.rate_hz)


def task_spec(config) -> TransitionSpec:
    """The transition spec of a task's policy env, from its config alone (no simulator)."""
    return TransitionSpec.from_spaces(*policy_spaces(config.env, config.wrappers))


@dataclass(frozen=True)
class TaskFeatures:
    """The LeRobot features of one task's transitions: spec, names and control rate."""

    spec: TransitionSpec  # the transitions exported or imported
    state_names: tuple[str, ...]  # one per entry of observations["state"]
    action_names: tuple[str, ...]  # one per action entry
    fps: float  # the control rate: frames per second

    @classmethod
    def of(cls, config) -> TaskFeatures:
        """A task config's features; ValueError for an observation this format has no place for."""
        spec = task_spec(config)
        others = set(spec.observation_spec) - {"state", BASE_ACTION_KEY, *spec.camera_keys}
        if others:
            raise ValueError(f"observation keys {sorted(others)} are neither the state nor a "
                             "camera: no LeRobot feature holds them")
        return cls(spec, tuple(state_names(config.env)), tuple(action_names(config)),
                   control_rate(config))

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.spec.camera_keys

    @property
    def has_base(self) -> bool:
        """The transitions carry a base policy's actions."""
        return BASE_ACTION_KEY in self.spec.observation_spec

    def features(self, video_info: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
        """info.json's features (LeRobot's own last), cameras as video with `video_info[camera]`."""
        obs = self.spec.observation_spec
        out: dict[str, dict[str, Any]] = {
            STATE: {"dtype": "float32", "shape": [len(self.state_names)],
                    "names": list(self.state_names)}}
        for cam in self.cameras:
            out[IMAGES + cam] = {"dtype": "video", "shape": list(obs[cam][0]),
                                 "names": ["height", "width", "channels"]}
            if video_info and cam in video_info:
                out[IMAGES + cam]["info"] = dict(video_info[cam])
        out[ACTION] = {"dtype": "float32", "shape": [self.spec.action_dim],
                       "names": list(self.action_names)}
        if self.has_base:
            out[BASE] = {**out[ACTION]}
        out.update({k: {"dtype": d, "shape": s, "names": n} for k, (d, s, n) in SCALARS.items()})
        return {**out, **DEFAULT_FEATURES}

    def columns(self, batch: Batch, demo: bool) -> dict[str, np.ndarray]:
        """The frames of a batch of transitions (one per transition), by feature (no cameras, no
        LeRobot indices)."""
        n, terminated = len(batch["rewards"]), batch["masks"] == 0
        base = {BASE: batch["observations"][BASE_ACTION_KEY]} if self.has_base else {}
        return {
            STATE: batch["observations"]["state"], **base, ACTION: batch["actions"],
            REWARD: batch["rewards"], DONE: batch["dones"], TERMINATED: terminated,
            TRUNCATED: batch["dones"] & ~terminated,
            SUCCESS: terminated & (batch["rewards"] > 0), GRASP_PENALTY: batch["grasp_penalty"],
            INTERVENED: batch["intervened"], POLICY_VERSION: batch["policy_version"],
            CLASSIFIER_VERSION: batch["classifier_version"], TIMESTAMP: batch["timestamp"],
            EPISODE_ID: batch["episode_id"], STEP: batch["step"],
            DEMO: np.full(n, demo), FINAL: np.zeros(n, bool),
        }

    def final_columns(self, last: Mapping[str, np.ndarray],
                      next_obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The frame after an episode's last transition, from that transition's `columns` and its
        next observation: a zero action and reward, the same done flags and provenance."""
        row = {k: np.asarray(v[-1:]) for k, v in last.items()}
        zero = (ACTION, REWARD, SUCCESS, GRASP_PENALTY, INTERVENED)
        base = {BASE: next_obs[BASE_ACTION_KEY][-1:]} if self.has_base else {}
        return {**row, **{k: np.zeros_like(row[k]) for k in zero}, STATE: next_obs["state"][-1:],
                **base, STEP: row[STEP] + 1, FINAL: np.ones(1, bool)}
