"""`NearMissOperator`: the scripted operator with deliberate near misses, so simulated label sets
hold the hard failures a classifier must reject: the open gripper hovering just above the cube, the
gripper closing on air just above it, the cube lifted and dropped, or lifted short of the success
height. Simulation only (pick_cube); it reads the scene as the scripted operator does
(`serl.envs.scene.Scene`), and acts only through the device action."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from serl.devices.base import DeviceState
from serl.devices.scripted import ScriptedOperator
from serl.envs.scene import TaskKind

Mode = Literal["success", "hover", "miss", "drop", "low_lift"]


@dataclass(frozen=True)
class NearMissConfig:
    # share of episodes the operator completes; the others are near misses
    success_share: float = 0.4
    # drawn
    modes: tuple[Literal["hover", "miss", "drop", "low_lift"], ...] = (
        "hover",
        "miss",
        "drop",
        "low_lift",
    )
    # uniformly for near misses: hover = open gripper above the cube; miss = closes on air above it;
    # drop = lifts, then releases short of success; low_lift = holds the cube short of success
    # m: drop and low_lift stop this far below the success height
    short_by: tuple[float, float] = (0.025, 0.045)
    # m: hover and miss keep the fingertips this far above the cube top
    gap: tuple[float, float] = (0.005, 0.03)


class NearMissOperator:
    """Implements `InterventionDevice`; call `new_episode()` after each reset to draw the next
    episode's mode."""

    def __init__(
        self,
        operator: ScriptedOperator,
        cfg: NearMissConfig = NearMissConfig(),
        seed: int | None = None,
    ):
        kind = operator.scene.task_kind
        if kind is not TaskKind.PICK_CUBE:
            raise ValueError(f"near misses are scripted for pick_cube only, not {kind.value!r}")
        self.operator, self.cfg = operator, cfg
        self.rng = np.random.default_rng(seed)
        self.mode: Mode = "success"
        self.offset = 0.0
        # miss: the gripper has closed on air; drop: the cube has been released
        self.latched = False

    def new_episode(self, mode: Mode | None = None) -> Mode:
        """Draw (or force) the mode of the episode that just started."""
        cfg = self.cfg
        if mode is None:
            near = cfg.modes[self.rng.integers(len(cfg.modes))]
            mode = "success" if self.rng.random() < cfg.success_share else near
        self.mode, self.latched = mode, False
        self.offset = float(
            self.rng.uniform(*(cfg.short_by if mode in ("drop", "low_lift") else cfg.gap))
        )
        return mode

    def read(self) -> DeviceState:
        state = self.operator.read()
        if self.mode == "success":
            return state
        action = np.array(state.action, np.float64)
        scene = self.operator.scene
        tcp, cube = scene.tcp_pose()[0], scene.object_pose()[0]
        if self.mode in ("hover", "miss"):
            # The cube resting on the table (z = 0) has its centre at its half size; the TCP is
            # between the fingertips.
            floor = cube[2] + scene.object_rest_z() + self.offset
            action[2] = max(action[2], self._toward(floor - tcp[2]))
            over = np.linalg.norm(cube[:2] - tcp[:2]) < 0.01 and tcp[2] - floor < 0.005
            self.latched |= self.mode == "miss" and over
            action[6] = -1.0 if self.latched else 1.0
        else:
            cap = scene.object_rest_z() + scene.lift_height() - self.offset
            held = np.linalg.norm(cube - tcp) < 0.02
            if held:  # rise no higher than the cap
                action[2] = min(action[2], self._toward(cap - cube[2]))
            self.latched |= self.mode == "drop" and held and cube[2] > cap - 0.005
            if self.latched:
                action[6] = 1.0  # released, and never grasps again
        return dataclasses.replace(state, action=np.clip(action, -1.0, 1.0).astype(np.float32))

    def _toward(self, error: float) -> float:
        """The z action that corrects `error` metres at the scripted operator's gain."""
        return self.operator.cfg.gain * error / self.operator.scene.action_scale_xyz
