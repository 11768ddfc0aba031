"""Demos recorded without a base's action get it at load: every episode's observations and next
observations, asked for together in full chunks (short episodes are not padded one by one)."""

import numpy as np
import pytest

from serl.agents.base_policy import BASE_ACTION_KEY, annotate


class CountingBase:
    """A base whose action is the observation's state, doubled; counts the batches it answers."""

    def __init__(self):
        self.batches = []

    def __call__(self, obs: dict) -> np.ndarray:
        self.batches.append(len(obs["state"]))
        return 2.0 * obs["state"]


def episode(start: int, length: int) -> dict:
    state = np.arange(start, start + length, dtype=np.float32)[:, None]
    return {"observations": {"state": state}, "next_observations": {"state": state + 0.5},
            "rewards": np.zeros(length, np.float32)}


@pytest.mark.timeout(10)
def test_every_observation_gets_its_own_action_in_few_full_chunks():
    episodes = {"a": episode(0, 18), "b": episode(100, 5), "c": episode(200, 30)}
    base = CountingBase()
    out = annotate(episodes, base, chunk=16)
    assert base.batches == [16] * 8  # 53 observations per field: 4 chunks each, not 2+1+2
    for name, batch in episodes.items():
        for field in ("observations", "next_observations"):
            got = out[name][field][BASE_ACTION_KEY]
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, 2.0 * batch[field]["state"])
            assert BASE_ACTION_KEY not in batch[field]  # the input is left as it was
        np.testing.assert_array_equal(out[name]["rewards"], batch["rewards"])
    assert annotate({}, base) == {}
