"""`BaseActionWrapper`: each observation gets the base policy's action for it
(`BASE_ACTION_KEY`), so the policy (a residual on it) and every transition carry it and the
learner never calls the base. The outermost wrapper of the stack. The base sees the observation as
the policy does (`view`: camera frames after the wire codec's round trip, as the learner stores
them and as a BC base was trained on them), so a transition's base action is the base's action
for its stored observation, online as for demos annotated at load. (Raw frames instead cost a BC
base on sim_peg_insert most of its success: about 20% in a run's evaluations against 55% in
`serl eval`, which shows it the codec's frames.)

A base that gives no usable action (`BasePolicyError`: a served base late, failed or answering
out of contract) never leads to a stale or default command. After a step, the episode ends there:
the step is truncated with `info["error"]` and `executed` False (no transition: its next
observation has no base action), and nothing more is sent until the next reset. A reset asks
again (the arm holds where the reset left it) for up to `reset_wait_s`, then raises."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from serl.envs.contract import BASE_ACTION_KEY, with_base_action

log = logging.getLogger("serl.envs")


class BasePolicyError(RuntimeError):
    """The base policy gave no usable action: none in time (a served one), or one of the wrong
    shape, not finite or out of range."""


def checked_action(action, action_dim: int) -> np.ndarray:
    """`action` as float32 (..., action_dim), or BasePolicyError naming what is wrong."""
    action = np.asarray(action, np.float32)
    if action.shape[-1:] != (action_dim,):
        raise BasePolicyError(f"the base policy's action has shape {action.shape}, expected "
                              f"(..., {action_dim})")
    if not np.isfinite(action).all():
        raise BasePolicyError("the base policy's action is not finite")
    if np.abs(action).max(initial=0.0) > 1.0 + 1e-6:
        raise BasePolicyError(f"the base policy's action leaves [-1, 1] (max |a| "
                              f"{np.abs(action).max():.3f})")
    return np.clip(action, -1.0, 1.0)


class BaseActionWrapper(gym.Wrapper):
    def __init__(self, env: gym.Env, base: Callable[[dict], np.ndarray],
                 view: Callable[[dict], dict], reset_wait_s: float = 30.0, retry_s: float = 0.5):
        super().__init__(env)
        self.base, self.view = base, view
        self.reset_wait_s, self.retry_s = reset_wait_s, retry_s
        self.observation_space = with_base_action(env.observation_space, env.action_space)
        self._failed = False  # the episode ended on a base failure: no step until a reset

    def _with_base(self, obs: dict) -> dict:
        return {**obs, BASE_ACTION_KEY: self.base(self.view(obs))}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        deadline = time.monotonic() + self.reset_wait_s
        while True:
            try:
                obs = self._with_base(obs)
                break
            except BasePolicyError as err:
                if time.monotonic() >= deadline:
                    raise BasePolicyError(f"{err}; no answer for {self.reset_wait_s:.0f} s "
                                          "after a reset (the arm holds)") from None
                log.warning("%s: the arm holds; asking again", err)
                time.sleep(self.retry_s)
        self._failed = False
        return obs, info

    def close(self) -> None:
        try:
            if callable(close := getattr(self.base, "close", None)):
                close()  # a served base's socket
        finally:
            super().close()

    def step(self, action):
        if self._failed:
            raise BasePolicyError("the episode ended on a base policy failure: reset first")
        obs, reward, terminated, truncated, info = self.env.step(action)
        try:
            return self._with_base(obs), reward, terminated, truncated, info
        except BasePolicyError as err:
            self._failed = True
            log.warning("%s: the episode ends here and the arm holds", err)
            info = {**info, "error": str(err), "executed": False}
            empty = np.zeros(self.observation_space[BASE_ACTION_KEY].shape, np.float32)
            return {**obs, BASE_ACTION_KEY: empty}, reward, terminated, True, info
