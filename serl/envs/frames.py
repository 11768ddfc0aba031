"""Frames and actions (pure functions). The raw env acts and observes in the robot's base frame; the
policy acts and sees its pose in the end-effector (TCP) frame, so what it learns does not depend on
where in the workspace it is."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from serl import geometry as g
from serl.envs.action_axes import ARM_AXES, hold_other_axes


def tcp_rotation(raw_obs: dict) -> np.ndarray:
    """Rotation matrix (TCP frame -> base frame) of the measured TCP orientation in a raw
    observation."""
    return g.quat_to_mat(np.asarray(raw_obs["state"]["tcp_pose"][3:7], np.float64))


def _rotate_blocks(action, R: np.ndarray) -> np.ndarray:
    a = np.asarray(action, np.float64)
    return np.concatenate([R @ a[:3], R @ a[3:6], a[6:]])


def to_policy_frame(b, R: np.ndarray) -> np.ndarray:
    """A base-frame action in the policy's (TCP) frame: R^T on the xyz block and on the rotation
    block."""
    return _rotate_blocks(b, R.T)


def from_policy_frame(p, R: np.ndarray) -> np.ndarray:
    """A policy-frame action in the base frame: [R p_xyz, R p_rot, gripper].

    The rotation block is treated as a small rotation vector in the TCP frame, so R maps it like any
    vector; the raw env applies the result as its base-frame rpy delta (for small per-step angles,
    extrinsic xyz euler angles and a rotation vector agree to first order). The same policy action
    from the same pose is the same motion.
    """
    return _rotate_blocks(p, R)


def clip_policy_action(p) -> np.ndarray:
    """Bring a policy-frame action inside [-1, 1]: each 3-block (xyz, rotation) is scaled by
    1 / max(1, max|block|), the gripper is clipped. Scaling, not per-component clipping, keeps the
    direction of the operator's motion; this is what "clipped" means for recorded operator
    actions."""
    p = np.asarray(p, np.float64)
    blocks = [p[i:i + 3] / max(1.0, float(np.max(np.abs(p[i:i + 3])))) for i in (0, 3)]
    return np.concatenate([*blocks, np.clip(p[6:], -1.0, 1.0)])


def operator_roundtrip(raw_obs: dict, b, axes: Sequence[str] = ARM_AXES) -> np.ndarray:
    """The base-frame action executed for the operator's base-frame action b: b mapped into the
    policy frame, held still about the axes the policy does not command (`axes`), clipped there
    (`clip_policy_action`), mapped back. Recording it in the policy frame then reproduces exactly
    this motion, and the recording is inside the action space. Each block is a scaled copy of the
    held one, so the result stays inside [-1, 1] in the base frame too and the raw env never clips
    it."""
    R = tcp_rotation(raw_obs)
    held = hold_other_axes(to_policy_frame(b, R), axes)
    return from_policy_frame(clip_policy_action(held), R)


def base_frame_roundtrip(raw_obs: dict, b, axes: Sequence[str] = ARM_AXES) -> np.ndarray:
    """`operator_roundtrip` for a policy acting in the base frame (no relative frame)."""
    del raw_obs
    return clip_policy_action(hold_other_axes(b, axes))


def relative_pose(pose, reset_pose) -> np.ndarray:
    """Pose (xyz + quat xyzw) relative to reset_pose, T_reset^-1 T: R_reset^T (p - p_reset),
    q_reset^-1 q. The quaternion has w >= 0, which is continuous around the identity, where relative
    poses live."""
    pose, reset_pose = np.asarray(pose, np.float64), np.asarray(reset_pose, np.float64)
    R0 = g.quat_to_mat(reset_pose[3:])
    q0 = reset_pose[3:] / np.linalg.norm(reset_pose[3:])
    q = g.quat_mul(g.quat_conj(q0), pose[3:] / np.linalg.norm(pose[3:]))
    return np.concatenate([R0.T @ (pose[:3] - reset_pose[:3]), g.canonical_quat(q)])


def rotate_vectors(v, R: np.ndarray) -> np.ndarray:
    """R^T applied to each consecutive 3-vector of v (base frame -> TCP frame)."""
    v = np.asarray(v, np.float64)
    return (v.reshape(-1, 3) @ R).reshape(v.shape)


def quat_pose_to_euler(pose) -> np.ndarray:
    """xyz + quat xyzw (7) -> xyz + extrinsic xyz euler angles (6)."""
    pose = np.asarray(pose, np.float64)
    return np.concatenate([pose[:3], g.quat_to_euler(pose[3:7])])
