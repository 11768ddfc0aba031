"""`Scene`: what the scripted operator (`serl.devices.scripted.ScriptedOperator`) reads to plan, and
nothing else: the arm, the gripper, the task's objects and the few task numbers its plans need.

The simulated env (`PandaSimEnv`) implements it from its simulator, and `FrankaEnv` on a simulated
rig from the robot server's public state, so the same operator drives both through the same device
actions a person's SpaceMouse gives. Poses are in the robot's base frame, quaternions xyzw.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

Pose = tuple[np.ndarray, np.ndarray]  # position (m, 3) and orientation (quat xyzw, 4)


class TaskKind(enum.Enum):
    """The tasks the scripted operator can plan."""

    PICK_CUBE = "pick_cube"
    PEG_INSERT = "peg_insert"


@dataclass(frozen=True)
class Insertion:
    """Where the held peg's tip and the hole are now (peg insertion)."""

    peg_tip: np.ndarray  # m, the peg's lower end
    hole_bottom: np.ndarray  # m, the centre of the hole's bottom
    hole_quat: np.ndarray  # xyzw, the hole's orientation (its yaw matters: the hole is square)


@runtime_checkable
class Scene(Protocol):
    """Read-only view of a scene for planning. The properties never fail (a runtime protocol check
    reads them); the methods may need a reset first."""

    @property
    def task_kind(self) -> TaskKind | None:
        """The task the scene can be planned as; None: none the scripted operator knows (a real
        rig)."""
        ...

    @property
    def action_scale_xyz(self) -> float:
        """m per step at |a| = 1."""
        ...

    @property
    def action_scale_rot(self) -> float:
        """rad per step at |a| = 1."""
        ...

    def lift_height(self) -> float:
        """m above its resting height at which a lifted object counts as lifted."""
        ...

    def object_rest_z(self) -> float:
        """m, height of the task object's centre resting on the table (this episode)."""
        ...

    def tcp_pose(self) -> Pose:
        """The TCP's measured pose."""
        ...

    def object_pose(self) -> Pose:
        """The task object's pose (the cube)."""
        ...

    def gripper_opening(self) -> float:
        """Measured opening, normalised to [0, 1] (0 closed)."""
        ...

    @property
    def gripper_commanded_closed(self) -> bool:
        """The last gripper command was "close"."""
        ...

    @property
    def gripper_moving(self) -> bool:
        """The fingers are still moving."""
        ...

    def insertion(self) -> Insertion:
        """The peg's tip and the hole (peg insertion only)."""
        ...


def scene_of(env) -> Scene:
    """The `Scene` of `env` (a raw env or any wrapper of it), or a ValueError saying it has none the
    scripted operator can plan."""
    raw = getattr(env, "unwrapped", env)
    if not isinstance(raw, Scene) or raw.task_kind is None:
        raise ValueError(
            f"{type(raw).__name__} offers no scene the scripted operator can plan (it "
            "drives the simulated tasks: serl/PandaPickCube-v0, serl/PandaPegInsert-v0, "
            "and pick_cube on a simulated rig)"
        )
    return raw
