"""The validated description of one rig (`hardware_configs/*.yaml`): where the robot server listens,
the ROS 2 topics it talks to, cameras, safety limits, reset pose, control rate, impedance and its
allowed ranges.

An unknown key or an out-of-range value is a `HardwareConfigError` whose message names the file and
the key path (e.g. `safety.box_max.2`). Units: metres, radians, seconds, newtons; quaternions xyzw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, model_validator

from serl.cameras.config import CameraConfig
from serl.robot.impedance_config import ImpedanceSection
from serl.robot.libfranka_config import LibfrankaSection
from serl.robot.rig_sections import (
    ControlSection,
    ResetSection,
    RobotSection,
    RosSection,
    SafetySection,
    Section,
)


class HardwareConfigError(ValueError):
    """A rig file that cannot be used; the message names the key."""


class SimSection(Section):
    task: Literal["pick_cube", "peg_insert"] = Field("pick_cube",
                                                     description="simulated task scene")
    seed: int = Field(0, ge=0, description="seed of the object placement at each task reset")
    physics_dt: float = Field(0.002, gt=0, le=0.01,
                              description="s per physics step (controller rate)")
    state_rate_hz: float = Field(100.0, ge=100, le=500, description="state topics publish rate")
    image_rate_hz: float = Field(10.0, ge=10, le=60, description="camera topics publish rate")


class HardwareConfig(Section):
    robot: RobotSection = Field(default_factory=RobotSection, description="robot server")
    ros: RosSection = Field(default_factory=RosSection, description="ROS 2 names")
    cameras: dict[str, CameraConfig] = Field(default_factory=dict,
                                             description="cameras by observation name")
    safety: SafetySection = Field(description="safety box, cone and limits")
    reset: ResetSection = Field(description="reset pose")
    control: ControlSection = Field(default_factory=ControlSection, description="control loop")
    impedance: ImpedanceSection = Field(default_factory=ImpedanceSection,
                                        description="impedance and ranges")
    # adapter sim: the simulated driver's scene; adapter libfranka: launch franky-sim for the rig
    sim: SimSection | None = Field(None, description="simulated driver settings (sim rigs only)")
    libfranka: LibfrankaSection | None = Field(None,
                                               description="libfranka adapter (adapter libfranka)")

    @model_validator(mode="after")
    def _reset_inside_box(self) -> HardwareConfig:
        lo, hi = np.asarray(self.safety.box_min), np.asarray(self.safety.box_max)
        xyz = np.asarray(self.reset.tcp_xyz)
        if np.any(xyz < lo) or np.any(xyz > hi):
            raise ValueError(f"reset.tcp_xyz {self.reset.tcp_xyz} is outside the safety box")
        if self.robot.adapter == "sim" and self.sim is None:
            raise ValueError("robot.adapter 'sim' needs a 'sim' section")
        if self.robot.adapter == "libfranka" and self.libfranka is None:
            raise ValueError("robot.adapter 'libfranka' needs a 'libfranka' section")
        return self


def load_hardware_config(path: str | Path) -> HardwareConfig:
    """Read and validate a rig file; `HardwareConfigError` names the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise HardwareConfigError(f"{path}: cannot read: {err}") from None
    except yaml.YAMLError as err:
        raise HardwareConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_hardware_config(raw, str(path))


def parse_hardware_config(raw: object, source: str = "hardware config") -> HardwareConfig:
    if not isinstance(raw, dict):
        raise HardwareConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    try:
        return HardwareConfig.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            problems.append(f"{key}: {e['msg']}")
        raise HardwareConfigError(f"{source}: " + "; ".join(problems)) from None
