"""`GripperPenaltyWrapper`: the grasp penalty the grasp critic learns from."""

from __future__ import annotations

import gymnasium as gym


class GripperPenaltyWrapper(gym.Wrapper):
    """`info["grasp_penalty"]` every step: -penalty when the gripper changed state this step, else
    0. It discourages needless grasp toggling without touching the task reward."""

    def __init__(self, env: gym.Env, penalty: float = 0.1):
        super().__init__(env)
        self.penalty = penalty

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["grasp_penalty"] = -float(self.penalty) if info.get("gripper_changed", False) else 0.0
        return obs, reward, terminated, truncated, info
