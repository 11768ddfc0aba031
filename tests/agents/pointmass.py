"""A 2-D point mass that must reach a goal: small enough to train an agent inside a unit test.

State variant: the goal is in the state. Pixel variant: the state holds only the position; a small
image shows which of two goals (left or right) is the target this episode.
"""

from __future__ import annotations

import numpy as np


class PointMassReach:
    action_dim = 2

    def __init__(self, pixels: bool = False, max_steps: int = 25, seed: int = 0):
        self.pixels = pixels
        self.max_steps = max_steps
        self.rng = np.random.default_rng(seed)

    def _obs(self) -> dict:
        if not self.pixels:
            return {"state": np.concatenate([self.pos, self.goal]).astype(np.float32)}
        img = np.zeros((16, 16, 3), np.uint8)
        img[4:12, (0 if self.goal[0] < 0 else 8):(8 if self.goal[0] < 0 else 16), 1] = 255
        return {"state": self.pos.astype(np.float32), "pixels": img}

    def reset(self) -> dict:
        self.pos = self.rng.uniform(-0.3, 0.3, 2)
        self.goal = (np.array([self.rng.choice([-0.8, 0.8]), 0.0]) if self.pixels
                     else self.rng.uniform(-1, 1, 2))
        self.t = 0
        return self._obs()

    def step(self, action) -> tuple[dict, float, bool, bool]:
        self.pos = np.clip(self.pos + 0.15 * np.clip(action, -1, 1), -1.2, 1.2)
        self.t += 1
        dist = float(np.linalg.norm(self.pos - self.goal))
        success = dist < 0.15
        return self._obs(), (1.0 if success else -dist), success, self.t >= self.max_steps
