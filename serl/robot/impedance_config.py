"""The impedance section of a rig file: the Cartesian impedance a rig starts with, the ranges
`set_impedance` may move it within, and the hard caps no rig file can widen."""

from __future__ import annotations

from pydantic import Field, model_validator

from serl.robot.rig_sections import Range, Section

# Hard caps no rig file can widen. 3000 N/m and 300 N m/rad are the Cartesian stiffness libfranka's
# own examples set as the arm's default (examples_common.cpp, setDefaultBehavior:
# setCartesianImpedance {3000 x3, 300 x3}); franka_ros's Cartesian impedance example lets its
# stiffness go only to 400 N/m and 30 N m/rad. Damping is a ratio of critical damping
# (2*sqrt(stiffness)): far below 1 oscillates, far above 1 lags and amplifies sensor noise.
STIFFNESS_CAPS = {"translational_stiffness": 3000.0, "rotational_stiffness": 300.0}  # N/m, N m/rad
DAMPING_RATIO_CAP = (0.1, 4.0)  # allowed damping ratios, whatever the rig file says


class ImpedanceSection(Section):
    translational_stiffness: float = Field(2000.0, gt=0, description="N/m, default")
    rotational_stiffness: float = Field(200.0, gt=0, description="N m/rad, default")
    translational_damping_ratio: float = Field(2.0, gt=0,
                                               description="times 2*sqrt(stiffness), default")
    rotational_damping_ratio: float = Field(1.0, gt=0,
                                            description="times 2*sqrt(stiffness), default")
    translational_stiffness_range: Range = Field((100.0, 3000.0),
                                                 description="N/m, allowed values (cap 3000)")
    rotational_stiffness_range: Range = Field((10.0, 300.0),
                                              description="N m/rad, allowed values (cap 300)")
    damping_ratio_range: Range = Field((0.3, 3.0),
                                       description="allowed damping ratios, both (within 0.1 to 4)")

    @model_validator(mode="after")
    def _defaults_in_range(self) -> ImpedanceSection:
        for name in IMPEDANCE_KEYS:
            lo, hi = self.range_of(name)
            if not 0 < lo <= hi:
                raise ValueError(f"range of {name} {(lo, hi)} must satisfy 0 < low <= high")
            cap_lo, cap_hi = (
                (0.0, STIFFNESS_CAPS[name]) if name in STIFFNESS_CAPS else DAMPING_RATIO_CAP
            )
            if not cap_lo <= lo <= hi <= cap_hi:
                raise ValueError(
                    f"range of {name} {(lo, hi)} goes past the hard limits [{cap_lo}, {cap_hi}] "
                    "(see STIFFNESS_CAPS in serl/robot/impedance_config.py)"
                )
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} = {getattr(self, name)} is outside its range {(lo, hi)}")
        return self

    def range_of(self, name: str) -> Range:
        return {
            "translational_stiffness": self.translational_stiffness_range,
            "rotational_stiffness": self.rotational_stiffness_range,
        }.get(name, self.damping_ratio_range)

    def defaults(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in IMPEDANCE_KEYS}


IMPEDANCE_KEYS = ("translational_stiffness", "rotational_stiffness", "translational_damping_ratio",
                  "rotational_damping_ratio")
