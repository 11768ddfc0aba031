"""`Checked`: a wrapper for tests that applies the env contract's `check_info` to every reset and
step info it passes, so a test fails when an env or wrapper emits a key `StepInfo` does not name."""

from __future__ import annotations

import gymnasium as gym

from serl.envs.contract import check_info


class Checked(gym.Wrapper):
    """Outermost in a test's env: every info is checked against `serl.envs.contract.StepInfo`."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, check_info(info, "reset info")

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, check_info(info, "step info")
