"""`BaseActionWrapper`: each observation gets the base policy's action for it
(`BASE_ACTION_KEY`), so the policy (a residual on it) and every transition carry it and the
learner never calls the base. The outermost wrapper of the stack: the base sees exactly what the
policy sees besides its own entry."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from serl.envs.contract import BASE_ACTION_KEY, with_base_action


class BaseActionWrapper(gym.Wrapper):
    def __init__(self, env: gym.Env, base: Callable[[dict], np.ndarray]):
        super().__init__(env)
        self.base = base
        self.observation_space = with_base_action(env.observation_space, env.action_space)

    def _with_base(self, obs: dict) -> dict:
        return {**obs, BASE_ACTION_KEY: self.base(obs)}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._with_base(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with_base(obs), reward, terminated, truncated, info
