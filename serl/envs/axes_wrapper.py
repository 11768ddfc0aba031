"""`ActionAxesWrapper`: the policy acts on the axes it commands (`serl.envs.action_axes`); the env
inside gets the 7-D action."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym

from serl.envs.action_axes import check_axes, expand, project
from serl.envs.contract import policy_action_space


class ActionAxesWrapper(gym.Wrapper):
    """The policy's action space is its axes (`policy_action_space`); each action is expanded to the
    7-D action of the env inside. `info["intervene_action"]` and `info["executed_action"]` (7-D,
    already held to the axes by the intervention wrapper) are projected to the policy's entries."""

    def __init__(self, env: gym.Env, axes: Sequence[str], gripper: bool):
        super().__init__(env)
        self.axes, self.gripper = check_axes(axes), bool(gripper)
        self.action_space = policy_action_space(self.axes, self.gripper)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(
            expand(action, self.axes, self.gripper))
        for key in ("intervene_action", "executed_action"):
            if key in info:
                info[key] = project(info[key], self.axes, self.gripper)
        return obs, reward, terminated, truncated, info
