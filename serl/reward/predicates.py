"""State predicates a task config can AND with the reward classifier ("success only while the
gripper holds something"), evaluated on the flattened state vector the policy sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class StatePredicate:
    # none: always true; gripper_closed: opening below the bound
    name: Literal["none", "gripper_closed"] = "none"
    # gripper_closed holds when the normalised opening (0 closed) is below this
    gripper_closed_below: float = 0.9

    def needs(self) -> tuple[str, ...]:
        """State entries this predicate reads."""
        return ("gripper_pose",) if self.name == "gripper_closed" else ()

    def holds(self, state: np.ndarray, layout: dict[str, slice]) -> bool:
        if self.name == "gripper_closed":
            return bool(np.asarray(state)[layout["gripper_pose"]][0] < self.gripper_closed_below)
        return True
