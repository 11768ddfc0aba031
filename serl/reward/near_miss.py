"""`NearMissOperator`: the scripted operator with deliberate near misses, so simulated label sets hold the hard
failures a classifier must reject: the cube lifted but short of the success height, or the open gripper hovering
just above it. Simulation only; it reads the simulator's state as the scripted operator does, and acts only
through the device action."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from serl.devices.base import DeviceState
from serl.devices.scripted import ScriptedOperator

Mode = Literal["success", "low_lift", "hover"]


@dataclass(frozen=True)
class NearMissConfig:
    success_share: float = 0.4  # share of episodes the operator completes; the others are near misses
    low_lift_share: float = 0.7  # share of near misses that lift the cube short of success (the rest hover)
    short_by: tuple[float, float] = (0.012, 0.04)  # m: a low lift stops this far below the success height
    hover_gap: tuple[float, float] = (0.005, 0.04)  # m: a hover keeps the fingertips this far above the cube top


class NearMissOperator:
    """Implements `InterventionDevice`; call `new_episode()` after each reset to draw the next episode's mode."""

    def __init__(self, operator: ScriptedOperator, cfg: NearMissConfig = NearMissConfig(), seed: int | None = None):
        if operator.env.cfg.task != "pick_cube":
            raise ValueError(f"near misses are scripted for pick_cube only, not {operator.env.cfg.task!r}")
        self.operator, self.cfg = operator, cfg
        self.rng = np.random.default_rng(seed)
        self.mode: Mode = "success"
        self.offset = 0.0

    def new_episode(self, mode: Mode | None = None) -> Mode:
        """Draw (or force) the mode of the episode that just started."""
        cfg = self.cfg
        if mode is None:
            if self.rng.random() < cfg.success_share:
                mode = "success"
            else:
                mode = "low_lift" if self.rng.random() < cfg.low_lift_share else "hover"
        self.mode = mode
        self.offset = float(self.rng.uniform(*(cfg.short_by if mode == "low_lift" else cfg.hover_gap)))
        return mode

    def read(self) -> DeviceState:
        state = self.operator.read()
        if self.mode == "success":
            return state
        env = self.operator.env
        sim, gain, scale = env.sim, self.operator.cfg.gain, env.cfg.action_scale_xyz
        tcp = sim.tcp_pose()[0]
        cube = sim.object_pose("cube")[0]
        action = np.array(state.action, np.float64)
        if self.mode == "low_lift":
            if np.linalg.norm(cube - tcp) < 0.02:  # held: rise no higher than the cap
                cap = env.task.rest_z + env.cfg.lift_height - self.offset
                action[2] = min(action[2], gain * (cap - cube[2]) / scale)
        else:
            floor = cube[2] + env.task.objects.cube_half_size + self.offset  # fingertips (TCP) above the cube top
            action[2] = max(action[2], gain * (floor - tcp[2]) / scale)
            action[6] = 1.0  # never close
        return dataclasses.replace(state, action=np.clip(action, -1.0, 1.0).astype(np.float32))
