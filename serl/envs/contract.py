"""The env side's written contract: what every raw env (simulated or `FrankaEnv`) and the wrapper
stack the policy sees agree on. Importable without jax, flax, orbax or mujoco: a learner takes its
spaces from here without building an env.

- the action space: 7-D, [-1, 1], float32: xyz and rpy deltas (scaled by the env's action scale),
  then the gripper command (`GRIPPER_CLOSE`, `GRIPPER_OPEN` thresholds); the policy's is the
  entries it commands (`serl.envs.action_axes`);
- `observation_space(env_config)`: the raw env's observation space, a pure function of its config;
- `policy_spaces(env_config, wrappers_config)`: the spaces after the wrapper stack;
- `StepInfo`: every key an env or wrapper writes into (or reads from) a step's or reset's `info`;
  `check_info` refuses any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np
from gymnasium import spaces

from serl.envs.action_axes import FULL_DIM, policy_action_dim

ACTION_DIM = FULL_DIM  # 7
ACTION_SPACE = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
# Gripper command thresholds: a command <= GRIPPER_CLOSE closes, >= GRIPPER_OPEN opens, else holds.
GRIPPER_CLOSE, GRIPPER_OPEN = -0.5, 0.5

# Order of the entries in the flattened state vector (19 values once tcp_pose is xyz + euler); a
# simulated task trained from state alone adds the privileged "object_pose" last.
STATE_KEYS = ("tcp_pose", "tcp_vel", "gripper_pose", "tcp_force", "tcp_torque", "object_pose")
# xyz + quaternion entries: relative to the reset pose, then euler.
POSE_KEYS = ("tcp_pose", "object_pose")
# State entries that are 3-vectors (or pairs of them) in the base frame, rotated into the TCP frame.
VECTOR_KEYS = ("tcp_vel", "tcp_force", "tcp_torque")


def gripper_command(command: float) -> bool | None:
    """What a gripper command asks: True close, False open, None hold (between the thresholds)."""
    if command <= GRIPPER_CLOSE:
        return True
    if command >= GRIPPER_OPEN:
        return False
    return None


def validate_action(action) -> np.ndarray:
    """The action as float64 (7,) clipped to [-1, 1], or a ValueError saying what is wrong with
    it."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape (7,) (xyz, rpy, gripper), got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(
            f"action contains NaN or infinity at index {np.flatnonzero(bad).tolist()}: {a}"
        )
    return np.clip(a, -1.0, 1.0)


# ---------- observation spaces (pure) ----------
def _vec(n: int, low=-np.inf, high=np.inf) -> spaces.Box:
    return spaces.Box(low, high, (n,), np.float32)


def state_space(object_pose: bool = False) -> spaces.Dict:
    """The raw state: TCP pose (xyz + quat xyzw), twist, gripper opening in [0, 1], wrench at the
    TCP; with `object_pose` the task object's pose (xyz + quat) too."""
    state = {
        "tcp_pose": _vec(7),
        "tcp_vel": _vec(6),
        "gripper_pose": _vec(1, 0.0, 1.0),
        "tcp_force": _vec(3),
        "tcp_torque": _vec(3),
    }
    if object_pose:
        state["object_pose"] = _vec(7)
    return spaces.Dict(state)


def raw_observation_space(
    cameras: tuple[str, ...], size: int, image_obs: bool, object_pose: bool = False
) -> spaces.Dict:
    """`{"state": state_space, "images": {camera: uint8 (size, size, 3)}}` (no "images" without
    `image_obs`)."""
    obs = {"state": state_space(object_pose)}
    if image_obs:
        obs["images"] = spaces.Dict(
            {c: spaces.Box(0, 255, (size, size, 3), np.uint8) for c in cameras}
        )
    return spaces.Dict(obs)


def observation_space(env_config) -> spaces.Dict:
    """The raw env's observation space for a `SimEnvConfig` or a `FrankaEnvConfig` (no simulator, no
    renderer, no robot server: the config alone)."""
    object_pose = bool(getattr(env_config, "object_pose", False))
    return raw_observation_space(
        tuple(env_config.cameras),
        int(env_config.image_size),
        bool(env_config.image_obs),
        object_pose,
    )


def euler_observation_space(space: spaces.Dict) -> spaces.Dict:
    """`space` with its poses (`POSE_KEYS`) as xyz + euler angles (6) instead of xyz +
    quaternion."""
    poses = [k for k in POSE_KEYS if k in space["state"].spaces]
    state = {**space["state"].spaces, **{k: _vec(6) for k in poses}}
    return spaces.Dict({**space.spaces, "state": spaces.Dict(state)})


def flat_state_keys(
    space: spaces.Dict, state_keys: tuple[str, ...] = STATE_KEYS
) -> tuple[str, ...]:
    """The state entries of `space` in flattened order; ValueError for one with no place there."""
    unknown = set(space["state"].spaces) - set(state_keys)
    if unknown:
        raise ValueError(
            f"state entries {sorted(unknown)} have no place in the flattened state {state_keys}"
        )
    return tuple(k for k in state_keys if k in space["state"].spaces)


def flat_observation_space(
    space: spaces.Dict, state_keys: tuple[str, ...] = STATE_KEYS
) -> spaces.Dict:
    """`{"state": float32 (N,), "<camera>": uint8 image, ...}`: the state entries concatenated in
    `state_keys` order and each camera at the top level."""
    boxes = [space["state"][k] for k in flat_state_keys(space, state_keys)]
    low = np.concatenate([b.low.ravel() for b in boxes]).astype(np.float32)
    high = np.concatenate([b.high.ravel() for b in boxes]).astype(np.float32)
    cameras = dict(space["images"].spaces) if "images" in space.spaces else {}
    if "state" in cameras:
        raise ValueError("a camera named 'state' would collide with the flattened state")
    return spaces.Dict({"state": spaces.Box(low, high, dtype=np.float32), **cameras})


def policy_action_space(axes, gripper: bool) -> spaces.Box:
    """The policy's action space: the arm axes it commands, then the gripper if it commands it."""
    return spaces.Box(-1.0, 1.0, (policy_action_dim(axes, gripper),), np.float32)


def policy_gripper(env_config) -> bool:
    """The policy commands the gripper: the env does not lock it."""
    return not bool(getattr(env_config, "gripper_locked", False))


def policy_spaces(env_config, wrappers_config) -> tuple[spaces.Dict, spaces.Box]:
    """(observation space, action space) the policy sees through `make_policy_env(raw,
    wrappers_config)`. The relative frame, reward, penalty and video wrappers keep the spaces; the
    euler and flatten wrappers change the observation's and the action-axes wrapper the action's,
    as here (they call these same functions): the arm axes of `wrappers_config.arm_axes`, then the
    gripper unless the env locks it. With a base policy (`wrappers_config.base_policy`) the
    observation also has `BASE_ACTION_KEY`: the base's action for it, in the policy's action
    space."""
    space = flat_observation_space(euler_observation_space(observation_space(env_config)))
    action = policy_action_space(wrappers_config.arm_axes, policy_gripper(env_config))
    if getattr(wrappers_config, "base_policy", ""):
        space = with_base_action(space, action)
    return space, action


BASE_ACTION_KEY = "base_action"


def with_base_action(space: spaces.Dict, action: spaces.Box) -> spaces.Dict:
    """`space` with the base policy's action as one more entry (`BaseActionWrapper`)."""
    if BASE_ACTION_KEY in space.spaces:
        raise ValueError(f"the observation already has an entry {BASE_ACTION_KEY!r}")
    return spaces.Dict({**space.spaces, BASE_ACTION_KEY: spaces.Box(
        action.low, action.high, action.shape, np.float32)})


# ---------- info ----------
class StepInfo(TypedDict, total=False):
    """Every key of a step's or reset's `info` in the stack (raw env, then the wrappers inside
    out)."""

    # raw env (PandaSimEnv, FrankaEnv)
    succeed: bool  # the task's success signal this step (False when not known: see succeed_known)
    succeed_known: bool  # False: `succeed` is no signal (a real rig, an aborted or failed step)
    timestamps: dict  # capture time (monotonic s) of the state and of each camera frame
    gripper_changed: bool  # the gripper command changed the gripper's state this step
    safety_hold: Any  # the robot server's safety hold that dropped this command (None: none)
    safety_clip_m: float  # how far (m) the env's safety box and cone moved this step's target
    fault: str  # FrankaEnv: the arm faulted; the episode is truncated and reset() recovers
    error: str  # FrankaEnv: a transient server or camera failure truncated the episode
    # intervention wrapper
    intervened: bool  # the operator's action was executed this step
    # False: no transition (an abort moved nothing; a base policy gave no action for the next
    # observation, so the episode ended there)
    executed: bool
    buttons: tuple  # the device's operator controls in this read
    held: tuple  # the controls pressed in this episode and held since
    paused_s: float  # seconds the step waited paused (not episode time)
    # the operator's executed action (policy frame above the frame wrapper)
    intervene_action: np.ndarray
    executed_action: np.ndarray  # a hold executed after a pause instead of the stale policy action
    aborted: bool  # the operator aborted the episode
    marked: str  # the operator's mark this step: "success" or "failure"
    reset_wait_s: float  # reset info: seconds waited for the operator's reset confirmation
    # reward wrappers
    classifier_prob: float  # the reward classifier's success probability this step
    classifier_threshold: float  # the probability the classifier's success needs
    classifier_version: int  # the classifier version that judged this step (and reset)
    classifier_error: str  # why the classifier failed this step (its reward is 0)
    operator_label: str  # HumanRewardWrapper: the operator's mark that gave this step's reward
    # gripper penalty wrapper
    grasp_penalty: float  # -penalty when the gripper changed state this step, else 0


STEP_INFO_KEYS = frozenset(StepInfo.__annotations__)


def unknown_info_keys(info: Mapping) -> list[str]:
    """The keys of `info` that `StepInfo` does not name, sorted."""
    return sorted(str(k) for k in set(info) - STEP_INFO_KEYS)


def check_info(info: Mapping, where: str = "info") -> Mapping:
    """`info` itself, or a KeyError naming the keys `StepInfo` does not name (an env or wrapper
    wrote a key outside the contract, or a typo)."""
    unknown = unknown_info_keys(info)
    if unknown:
        raise KeyError(
            f"{where} has keys the env contract (serl.envs.contract.StepInfo) does not name: "
            f"{unknown}"
        )
    return info
