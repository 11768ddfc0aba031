"""The observation side of the policy's stack: the TCP frame (`RelativeFrameWrapper`, which maps
actions too), euler angles (`QuatToEulerWrapper`) and the flat state vector (`FlattenWrapper`). The
spaces they produce are `serl.envs.contract`'s pure functions, so the contract and the stack
agree."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from serl import geometry as g
from serl.envs.contract import (
    POSE_KEYS,
    STATE_KEYS,
    VECTOR_KEYS,
    euler_observation_space,
    flat_observation_space,
    flat_state_keys,
)
from serl.envs.frames import (
    from_policy_frame,
    quat_pose_to_euler,
    relative_pose,
    rotate_vectors,
    tcp_rotation,
    to_policy_frame,
)


class RelativeFrameWrapper(gym.Wrapper):
    """The policy acts and sees itself in the TCP frame.

    Actions: p -> [R p_xyz, R p_rot, p_grip] with R the measured TCP orientation before the step
    (see `from_policy_frame`). A policy action whose base-frame image leaves [-1, 1] is clipped per
    component by the raw env; recorded operator actions never are (see `operator_roundtrip`, the
    intervention wrapper's round trip). `info["intervene_action"]`, when present, is
    replaced by the policy-frame action. Observations: `tcp_pose` relative to the TCP pose at reset;
    `tcp_vel`, `tcp_force`, `tcp_torque` in the current TCP frame.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._raw_obs, self._reset_pose = None, None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._raw_obs = obs
        self._reset_pose = np.asarray(obs["state"]["tcp_pose"], np.float64)
        return self._relative(obs), info

    def step(self, action):
        R = tcp_rotation(self._raw_obs)
        obs, reward, terminated, truncated, info = self.env.step(from_policy_frame(action, R))
        if "intervene_action" in info:
            # The clip removes float rounding only: the executed action is already a policy-frame
            # action mapped.
            policy_action = np.clip(to_policy_frame(info["intervene_action"], R), -1.0, 1.0)
            info["intervene_action"] = policy_action.astype(np.float32)
        self._raw_obs = obs
        return self._relative(obs), reward, terminated, truncated, info

    def _relative(self, obs: dict) -> dict:
        state = dict(obs["state"])
        R = tcp_rotation(obs)
        state["tcp_pose"] = relative_pose(state["tcp_pose"], self._reset_pose).astype(np.float32)
        if "object_pose" in state:
            # Against the reset frame turned z-up (same yaw), so an object lying flat has roll =
            # pitch = 0 and its euler angles sit far from the wrap at +-pi (the TCP frame itself
            # points down).
            up = g.quat_mul(self._reset_pose[3:], g.GRIPPER_DOWN_XYZW)
            upright = np.concatenate([self._reset_pose[:3], up])
            state["object_pose"] = relative_pose(state["object_pose"], upright).astype(np.float32)
        for key in VECTOR_KEYS:
            state[key] = rotate_vectors(state[key], R).astype(np.float32)
        return {**obs, "state": state}


class QuatToEulerWrapper(gym.ObservationWrapper):
    """Poses (`tcp_pose`, `object_pose`) as xyz + extrinsic xyz euler angles (6) instead of xyz +
    quaternion."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = euler_observation_space(env.observation_space)

    def observation(self, obs: dict) -> dict:
        state = dict(obs["state"])
        for key in POSE_KEYS:
            if key in state:
                state[key] = quat_pose_to_euler(state[key]).astype(np.float32)
        return {**obs, "state": state}


class FlattenWrapper(gym.ObservationWrapper):
    """Observation `{"state": float32 (N,), "<camera>": uint8 image, ...}`: the state entries
    concatenated in `state_keys` order, those the env has (N = 19 after the euler wrapper, 25 with
    `object_pose`) and each camera at the top level. A state entry not in `state_keys` is an error,
    not silently dropped."""

    def __init__(self, env: gym.Env, state_keys: tuple[str, ...] = STATE_KEYS):
        super().__init__(env)
        space = env.observation_space
        self.state_keys = flat_state_keys(space, state_keys)
        self.observation_space = flat_observation_space(space, state_keys)
        self.cameras = tuple(k for k in self.observation_space.spaces if k != "state")

    def observation(self, obs: dict) -> dict:
        state = np.concatenate(
            [np.asarray(obs["state"][k], np.float32).ravel() for k in self.state_keys]
        )
        return {"state": state, **{c: obs["images"][c] for c in self.cameras}}


def flat_state_layout(env: gym.Env) -> dict[str, slice]:
    """Where each state entry sits in the flattened state vector of `env` (which must contain a
    FlattenWrapper)."""
    while not isinstance(env, FlattenWrapper):
        if not hasattr(env, "env"):
            raise ValueError(
                "no FlattenWrapper below this wrapper: the flattened state layout is unknown"
            )
        env = env.env
    layout, start = {}, 0
    for key in env.state_keys:
        size = int(np.prod(env.env.observation_space["state"][key].shape))
        layout[key], start = slice(start, start + size), start + size
    return layout
