"""Transition factories and exact comparisons shared by the replay tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from serl.data import TransitionSpec, stack

SMALL_SPEC = TransitionSpec({"state": ((3,), np.float32), "front": ((4, 4, 3), np.uint8),
                             "wrist": ((2, 2, 3), np.uint8)}, action_dim=2)


def camera_spec(size: int, state_dim: int = 19) -> TransitionSpec:
    """Two size x size cameras + a state vector, 7-D actions
    (the simulated tasks' shape at size 128)."""
    return TransitionSpec({"state": ((state_dim,), np.float32),
                           "front": ((size, size, 3), np.uint8),
                           "wrist": ((size, size, 3), np.uint8)}, action_dim=7)


def random_obs(rng: np.random.Generator, spec: TransitionSpec) -> dict[str, np.ndarray]:
    obs = {}
    for key, (shape, dtype) in spec.observation_spec.items():
        if dtype == np.uint8:
            obs[key] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            obs[key] = rng.normal(size=shape).astype(dtype)
    return obs


def transition(spec: TransitionSpec, obs: dict, next_obs: dict, episode_id: int, step: int,
               done: bool, uid: float = 0.0, reward: float = 0.0) -> dict[str, Any]:
    """One valid transition; `uid` goes in `timestamp` so a sampled row can be traced
    back to its source."""
    return {
        "observations": obs, "next_observations": next_obs,
        "actions": np.full(spec.action_dim, step / 10, np.float32), "rewards": np.float32(reward),
        "masks": np.float32(0.0 if done else 1.0), "dones": np.bool_(done),
        "intervened": np.bool_(step % 2),
        "grasp_penalty": np.float32(-0.1 * (step % 3 == 0)), "episode_id": np.int64(episode_id),
        "step": np.int32(step), "policy_version": np.array([1, step], np.int64),
        "classifier_version": np.int32(3), "timestamp": np.float64(uid),
    }


def mutate(obs: dict[str, np.ndarray], how: str, rng: np.random.Generator,
           spec: TransitionSpec) -> dict:
    """An observation that differs from `obs` (or equals it, for "none") in a specific way."""
    if how == "none":
        return obs
    if how == "fresh":
        return random_obs(rng, spec)
    out = {k: v.copy() for k, v in obs.items()}
    if how == "one_byte":
        out["front"].reshape(-1)[0] ^= 1
    elif how == "negative_zero":
        # equal as numbers to the +0.0 that `episode` put there, different as bytes
        out["state"][0] = -0.0
    return out


def episode(rng: np.random.Generator, spec: TransitionSpec, episode_id: int, length: int,
            gaps: tuple[str, ...] = ("none",), uid0: float = 0.0) -> list[dict[str, Any]]:
    """An episode whose step k observes step k-1's next observation, except where a gap
    kind is drawn."""
    out, obs = [], random_obs(rng, spec)
    for k in range(length):
        next_obs, gap = random_obs(rng, spec), gaps[rng.integers(len(gaps))]
        if gap == "negative_zero":
            next_obs["state"][0] = 0.0
        out.append(transition(spec, obs, next_obs, episode_id, k, k == length - 1, uid0 + k))
        obs = mutate(next_obs, gap, rng, spec)
    return out


def assert_rows_equal(batch: dict, expected: list[dict]) -> None:
    """Every field of every row equal byte for byte (dtype and shape included)."""
    assert_trees_equal(batch, stack(expected))


def assert_trees_equal(a: dict, b: dict, path: str = "") -> None:
    assert sorted(a) == sorted(b), (path, sorted(a), sorted(b))
    for key in a:
        if isinstance(a[key], dict):
            assert_trees_equal(a[key], b[key], f"{path}/{key}")
            continue
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.dtype == y.dtype and x.shape == y.shape, (f"{path}/{key}", x.dtype, y.dtype,
                                                           x.shape, y.shape)
        assert x.tobytes() == y.tobytes(), f"{path}/{key} differs"


def rss_anon_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")
