"""Which axes of the 7-D action the policy commands: the arm axes a task names
(`PolicyEnvConfig.arm_axes`, in the policy's frame) and the gripper unless the env locks it. The
others are held at zero (no motion about them) for the policy and the operator alike, so the
recorded action is what moved the arm and has no dead dimension: a pick task that never needs to
tilt the hand learns over x, y, z, yaw and the gripper (5-D); a gripper-locked task over the six
arm axes (6-D), as the reference implementation gives it.

Pure functions over numpy arrays (importable by configs). `serl.envs.axes_wrapper.ActionAxesWrapper`
applies them right outside the relative frame in the policy's stack
(`serl.envs.stack.make_policy_env`); the operator's actions are held to the same axes by the
intervention wrapper's round trip (`serl.envs.frames.operator_roundtrip`); the policy's action space
is `serl.envs.contract.policy_action_space`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# the arm entries of the 7-D action (`serl.envs.contract.ACTION_SPACE`), then the gripper's
ARM_AXES = ("x", "y", "z", "roll", "pitch", "yaw")
GRIPPER_INDEX = len(ARM_AXES)
FULL_DIM = len(ARM_AXES) + 1


def check_axes(axes: Sequence[str]) -> tuple[str, ...]:
    """The axes as a tuple, or a ValueError naming what is wrong: each an arm axis, once, in the
    action's order (x, y, z, roll, pitch, yaw), at least one."""
    axes = tuple(axes)
    unknown = [a for a in axes if a not in ARM_AXES]
    if unknown:
        raise ValueError(f"wrappers.arm_axes: unknown axis {unknown}; the arm axes are "
                         f"{', '.join(ARM_AXES)}")
    if not axes or len(set(axes)) != len(axes) or list(axes) != sorted(axes, key=ARM_AXES.index):
        raise ValueError(f"wrappers.arm_axes {list(axes)} must name at least one axis, each once, "
                         f"in the order {', '.join(ARM_AXES)}")
    return axes


def policy_indices(axes: Sequence[str], gripper: bool) -> np.ndarray:
    """Indices into the 7-D action of the policy's action entries, in order."""
    arm = [ARM_AXES.index(a) for a in axes]
    return np.asarray(arm + ([GRIPPER_INDEX] if gripper else []), np.intp)


def policy_action_dim(axes: Sequence[str], gripper: bool) -> int:
    return len(policy_indices(axes, gripper))


def expand(action, axes: Sequence[str], gripper: bool) -> np.ndarray:
    """A policy action as the 7-D action: zero on the axes the policy does not command, and a
    gripper hold (0) when it has no gripper entry. A wrong shape is a ValueError naming it."""
    index = policy_indices(axes, gripper)
    a = np.asarray(action, np.float64)
    if a.shape != index.shape:
        raise ValueError(f"action must have shape {index.shape} (axes {', '.join(axes)}"
                         f"{', gripper' if gripper else ''}), got shape {a.shape}")
    full = np.zeros(FULL_DIM)
    full[index] = a
    return full


def project(full, axes: Sequence[str], gripper: bool) -> np.ndarray:
    """The policy's entries of a 7-D action (the inverse of `expand` on what it produces)."""
    return np.asarray(full, np.float64)[policy_indices(axes, gripper)].astype(np.float32)


def hold_other_axes(full, axes: Sequence[str]) -> np.ndarray:
    """A 7-D action with the arm axes outside `axes` set to zero (the gripper entry kept)."""
    held = np.asarray(full, np.float64).copy()
    held[[i for i, a in enumerate(ARM_AXES) if a not in axes]] = 0.0
    return held
