"""The wrapper stack between the raw env of DESIGN.md and the policy, inside out: intervention → relative frame →
quaternion to euler → flatten → reward classifier → gripper penalty → video. `make_policy_env` builds it.

Frames: the raw env acts and observes in the robot's base frame; the policy acts and sees its pose in the
end-effector (TCP) frame, so what it learns does not depend on where in the workspace it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import imageio
import numpy as np
from gymnasium import spaces

from serl import geometry as g
from serl.devices.base import InterventionDevice
from serl.envs.intervention import InterventionWrapper
from serl.envs.reward_wrappers import HumanRewardWrapper, RewardClassifierWrapper  # noqa: F401  (re-exported)

# Order of the entries in the flattened state vector (19 values once tcp_pose is xyz + euler); a simulated task
# trained from state alone adds the privileged "object_pose" last.
STATE_KEYS = ("tcp_pose", "tcp_vel", "gripper_pose", "tcp_force", "tcp_torque", "object_pose")
POSE_KEYS = ("tcp_pose", "object_pose")  # xyz + quaternion entries: relative to the reset pose, then euler
# State entries that are 3-vectors (or pairs of them) in the base frame, rotated into the TCP frame.
VECTOR_KEYS = ("tcp_vel", "tcp_force", "tcp_torque")

# ---------- frames and actions (pure) ----------
def tcp_rotation(raw_obs: dict) -> np.ndarray:
    """Rotation matrix (TCP frame -> base frame) of the measured TCP orientation in a raw observation."""
    return g.quat_to_mat(np.asarray(raw_obs["state"]["tcp_pose"][3:7], np.float64))


def _rotate_blocks(action, R: np.ndarray) -> np.ndarray:
    a = np.asarray(action, np.float64)
    return np.concatenate([R @ a[:3], R @ a[3:6], a[6:]])


def to_policy_frame(b, R: np.ndarray) -> np.ndarray:
    """A base-frame action in the policy's (TCP) frame: R^T on the xyz block and on the rotation block."""
    return _rotate_blocks(b, R.T)


def from_policy_frame(p, R: np.ndarray) -> np.ndarray:
    """A policy-frame action in the base frame: [R p_xyz, R p_rot, gripper].

    The rotation block is treated as a small rotation vector in the TCP frame, so R maps it like any vector; the
    raw env applies the result as its base-frame rpy delta (for small per-step angles, extrinsic xyz euler angles
    and a rotation vector agree to first order). The same policy action from the same pose is the same motion.
    """
    return _rotate_blocks(p, R)


def clip_policy_action(p) -> np.ndarray:
    """Bring a policy-frame action inside [-1, 1]: each 3-block (xyz, rotation) is scaled by
    1 / max(1, max|block|), the gripper is clipped. Scaling, not per-component clipping, keeps the direction of
    the operator's motion; this is what "clipped" means for recorded operator actions."""
    p = np.asarray(p, np.float64)
    blocks = [p[i:i + 3] / max(1.0, float(np.max(np.abs(p[i:i + 3])))) for i in (0, 3)]
    return np.concatenate([*blocks, np.clip(p[6:], -1.0, 1.0)])


def operator_roundtrip(raw_obs: dict, b) -> np.ndarray:
    """The base-frame action executed for the operator's base-frame action b: b mapped into the policy frame,
    clipped there (`clip_policy_action`), mapped back. Recording it in the policy frame then reproduces exactly
    this motion, and the recording is inside the action space. Each block is a scaled copy of b's, so the result
    stays inside [-1, 1] in the base frame too and the raw env never clips it."""
    R = tcp_rotation(raw_obs)
    return from_policy_frame(clip_policy_action(to_policy_frame(b, R)), R)


def relative_pose(pose, reset_pose) -> np.ndarray:
    """Pose (xyz + quat xyzw) relative to reset_pose, T_reset^-1 T: R_reset^T (p - p_reset), q_reset^-1 q.
    The quaternion has w >= 0, which is continuous around the identity, where relative poses live."""
    pose, reset_pose = np.asarray(pose, np.float64), np.asarray(reset_pose, np.float64)
    R0 = g.quat_to_mat(reset_pose[3:])
    q = g.quat_mul(g.quat_conj(reset_pose[3:] / np.linalg.norm(reset_pose[3:])), pose[3:] / np.linalg.norm(pose[3:]))
    return np.concatenate([R0.T @ (pose[:3] - reset_pose[:3]), g.canonical_quat(q)])


def rotate_vectors(v, R: np.ndarray) -> np.ndarray:
    """R^T applied to each consecutive 3-vector of v (base frame -> TCP frame)."""
    v = np.asarray(v, np.float64)
    return (v.reshape(-1, 3) @ R).reshape(v.shape)


def quat_pose_to_euler(pose) -> np.ndarray:
    """xyz + quat xyzw (7) -> xyz + extrinsic xyz euler angles (6)."""
    pose = np.asarray(pose, np.float64)
    return np.concatenate([pose[:3], g.quat_to_euler(pose[3:7])])


def camera_frame(obs: dict) -> np.ndarray | None:
    """The observation's camera images side by side (raw obs with "images" or flattened obs), or None."""
    images = obs.get("images", obs)
    frames = [v for v in images.values() if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 3]
    return np.concatenate(frames, axis=1) if frames else None


# ---------- wrappers ----------
class RelativeFrameWrapper(gym.Wrapper):
    """The policy acts and sees itself in the TCP frame.

    Actions: p -> [R p_xyz, R p_rot, p_grip] with R the measured TCP orientation before the step (see
    `from_policy_frame`). A policy action whose base-frame image leaves [-1, 1] is clipped per component by the
    raw env; recorded operator actions never are (see `operator_roundtrip`, exposed as `roundtrip` for the
    intervention wrapper). `info["intervene_action"]`, when present, is replaced by the policy-frame action.
    Observations: `tcp_pose` relative to the TCP pose at reset; `tcp_vel`, `tcp_force`, `tcp_torque` in the
    current TCP frame.
    """

    roundtrip = staticmethod(operator_roundtrip)

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
            # The clip removes float rounding only: the executed action is already a policy-frame action mapped.
            policy_action = np.clip(to_policy_frame(info["intervene_action"], R), -1.0, 1.0)
            info["intervene_action"] = policy_action.astype(np.float32)
        self._raw_obs = obs
        return self._relative(obs), reward, terminated, truncated, info

    def _relative(self, obs: dict) -> dict:
        state = dict(obs["state"])
        R = tcp_rotation(obs)
        state["tcp_pose"] = relative_pose(state["tcp_pose"], self._reset_pose).astype(np.float32)
        if "object_pose" in state:
            # Against the reset frame turned z-up (same yaw), so an object lying flat has roll = pitch = 0 and
            # its euler angles sit far from the wrap at +-pi (the TCP frame itself points down).
            upright = np.concatenate([self._reset_pose[:3], g.quat_mul(self._reset_pose[3:], g.GRIPPER_DOWN_XYZW)])
            state["object_pose"] = relative_pose(state["object_pose"], upright).astype(np.float32)
        for key in VECTOR_KEYS:
            state[key] = rotate_vectors(state[key], R).astype(np.float32)
        return {**obs, "state": state}


class QuatToEulerWrapper(gym.ObservationWrapper):
    """Poses (`tcp_pose`, `object_pose`) as xyz + extrinsic xyz euler angles (6) instead of xyz + quaternion."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        poses = [k for k in POSE_KEYS if k in space["state"].spaces]
        state = {**space["state"].spaces, **{k: spaces.Box(-np.inf, np.inf, (6,), np.float32) for k in poses}}
        self.observation_space = spaces.Dict({**space.spaces, "state": spaces.Dict(state)})

    def observation(self, obs: dict) -> dict:
        state = dict(obs["state"])
        for key in POSE_KEYS:
            if key in state:
                state[key] = quat_pose_to_euler(state[key]).astype(np.float32)
        return {**obs, "state": state}


class FlattenWrapper(gym.ObservationWrapper):
    """Observation `{"state": float32 (N,), "<camera>": uint8 image, ...}`: the state entries concatenated in
    `state_keys` order, those the env has (N = 19 after the euler wrapper, 25 with `object_pose`) and each camera
    at the top level. A state entry not in `state_keys` is an error, not silently dropped."""

    def __init__(self, env: gym.Env, state_keys: tuple[str, ...] = STATE_KEYS):
        super().__init__(env)
        space = env.observation_space
        unknown = set(space["state"].spaces) - set(state_keys)
        if unknown:
            raise ValueError(f"state entries {sorted(unknown)} have no place in the flattened state {state_keys}")
        self.state_keys = tuple(k for k in state_keys if k in space["state"].spaces)
        boxes = [space["state"][k] for k in self.state_keys]
        low = np.concatenate([b.low.ravel() for b in boxes]).astype(np.float32)
        high = np.concatenate([b.high.ravel() for b in boxes]).astype(np.float32)
        cameras = dict(space["images"].spaces) if "images" in space.spaces else {}
        if "state" in cameras:
            raise ValueError("a camera named 'state' would collide with the flattened state")
        self.cameras = tuple(cameras)
        self.observation_space = spaces.Dict({"state": spaces.Box(low, high, dtype=np.float32), **cameras})

    def observation(self, obs: dict) -> dict:
        state = np.concatenate([np.asarray(obs["state"][k], np.float32).ravel() for k in self.state_keys])
        return {"state": state, **{c: obs["images"][c] for c in self.cameras}}


def flat_state_layout(env: gym.Env) -> dict[str, slice]:
    """Where each state entry sits in the flattened state vector of `env` (which must contain a FlattenWrapper)."""
    while not isinstance(env, FlattenWrapper):
        if not hasattr(env, "env"):
            raise ValueError("no FlattenWrapper below this wrapper: the flattened state layout is unknown")
        env = env.env
    layout, start = {}, 0
    for key in env.state_keys:
        size = int(np.prod(env.env.observation_space["state"][key].shape))
        layout[key], start = slice(start, start + size), start + size
    return layout


class GripperPenaltyWrapper(gym.Wrapper):
    """`info["grasp_penalty"]` every step: -penalty when the gripper changed state this step, else 0. It
    discourages needless grasp toggling without touching the task reward."""

    def __init__(self, env: gym.Env, penalty: float = 0.1):
        super().__init__(env)
        self.penalty = penalty

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["grasp_penalty"] = -float(self.penalty) if info.get("gripper_changed", False) else 0.0
        return obs, reward, terminated, truncated, info


class VideoRecorder(gym.Wrapper):
    """Writes each episode's camera images (side by side) to `<path>/episode_NNNN.mp4` when the episode ends, a
    new one starts, or on close(). Nothing is written for an episode without frames. `written` lists the files."""

    def __init__(self, env: gym.Env, path: str | Path, fps: int = 10):
        super().__init__(env)
        self.directory = Path(path)
        self.fps = fps
        self.written: list[Path] = []
        self._frames: list[np.ndarray] = []

    def reset(self, **kwargs):
        self._flush()
        obs, info = self.env.reset(**kwargs)
        self._record(obs)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._record(obs)
        if terminated or truncated:
            self._flush()
        return obs, reward, terminated, truncated, info

    def close(self):
        self._flush()
        super().close()

    def _record(self, obs: dict) -> None:
        if (frame := camera_frame(obs)) is not None:
            self._frames.append(frame)

    def _flush(self) -> None:
        if not self._frames:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        index = len(self.written)
        while (path := self.directory / f"episode_{index:04d}.mp4").exists():  # never overwrite an earlier run's
            index += 1
        imageio.v2.mimwrite(path, self._frames, fps=self.fps)
        self.written.append(path)
        self._frames = []


# ---------- the stack ----------
@dataclass(frozen=True)
class PolicyEnvConfig:
    relative_frame: bool = True  # policy acts and sees its pose in the TCP frame (False: base frame, absolute pose)
    grasp_penalty: float = 0.1  # magnitude of info["grasp_penalty"] on steps where the gripper changes state
    classifier_threshold: float = 0.5  # success probability at which the reward classifier ends the episode
    video_fps: int = 10  # frame rate of recorded videos
    intervention_hold_steps: int = 0  # steps the operator keeps control after the device goes idle (real rigs: ~3)
    confirm_reset: bool = False  # after each reset, wait for the operator's "confirm_reset" (real rigs; not in sim)
    operator_poll_s: float = 0.05  # device polling period while paused or waiting for the reset confirmation
    marks_end_episode: bool = True  # "mark_success" ends the episode; False: it only labels the steps it is held


def make_policy_env(env: gym.Env, cfg: PolicyEnvConfig = PolicyEnvConfig(), classifier=None,
                    device: InterventionDevice | None = None, video_path: str | Path | None = None,
                    predicate=None, human_reward: bool = False) -> gym.Env:
    """The raw env wrapped, inside out: intervention (if a device is given) → relative frame (if configured) →
    quaternion to euler → flatten → reward classifier (if given; `predicate` ANDed) or the operator's reward (if
    `human_reward`) → gripper penalty → video (if a path is given)."""
    if device is not None:
        roundtrip = RelativeFrameWrapper.roundtrip if cfg.relative_frame else None
        env = InterventionWrapper(env, device, roundtrip, cfg.intervention_hold_steps, cfg.confirm_reset,
                                  cfg.operator_poll_s, cfg.marks_end_episode)
    if cfg.relative_frame:
        env = RelativeFrameWrapper(env)
    env = FlattenWrapper(QuatToEulerWrapper(env))
    if classifier is not None:
        env = RewardClassifierWrapper(env, classifier, cfg.classifier_threshold, predicate)
    if human_reward:  # the operator's mark_success / mark_failure is the reward
        env = HumanRewardWrapper(env)
    env = GripperPenaltyWrapper(env, cfg.grasp_penalty)
    if video_path is not None:
        env = VideoRecorder(env, video_path, cfg.video_fps)
    return env
