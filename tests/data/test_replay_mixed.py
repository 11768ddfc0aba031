"""RLPD mixing (half online, half demo) and the prefetching iterator."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from replay_helpers import SMALL_SPEC, episode

from serl.data import PrefetchIterator, ReplayStorage, sample_mixed


def filled(path, reward: float) -> ReplayStorage:
    ts = episode(np.random.default_rng(0), SMALL_SPEC, 0, 10)
    for t in ts:
        t["rewards"] = np.float32(reward)  # tells the two buffers apart
    storage = ReplayStorage(path, SMALL_SPEC, 100, 4)
    storage.append(ts, "a", 0)
    return storage


@pytest.mark.timeout(10)
@pytest.mark.parametrize("batch_size, n_online", [(256, 128), (7, 4), (1, 1)])
def test_mixed_batches_are_half_online_then_half_demo(tmp_path, batch_size, n_online):
    online, demo = filled(tmp_path / "online", 1.0), filled(tmp_path / "demo", -1.0)
    batch = sample_mixed(online, demo, batch_size, np.random.default_rng(0))
    assert batch["observations"]["front"].shape == (batch_size, 4, 4, 3)
    np.testing.assert_array_equal(batch["rewards"][:n_online], 1.0)
    np.testing.assert_array_equal(batch["rewards"][n_online:], -1.0)
    online.close()
    demo.close()


@pytest.mark.timeout(20)
def test_prefetch_yields_device_batches_and_closes():
    counter = iter(range(10**6))
    # device_put defaults to jax.device_put
    it = PrefetchIterator(lambda: {"x": np.full(3, next(counter), np.float32)}, depth=2)
    values = [float(next(it)["x"][0]) for _ in range(5)]
    assert values == [0, 1, 2, 3, 4]
    assert type(next(it)["x"]).__module__.startswith("jax")
    it.close()
    assert not it._thread.is_alive()
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.timeout(10)
def test_prefetch_reraises_the_samplers_exception():
    calls = []

    def sample():
        calls.append(1)
        if len(calls) > 2:
            raise KeyError("sampler broke")
        return len(calls)

    with PrefetchIterator(sample, device_put=lambda b: b, depth=1) as it:
        assert [next(it), next(it)] == [1, 2]
        with pytest.raises(KeyError, match="sampler broke"):
            next(it)
        assert not it._thread.is_alive()


@pytest.mark.timeout(10)
def test_prefetch_close_does_not_hang_on_a_full_queue():
    started = threading.Event()

    def sample():
        started.set()
        return 0

    it = PrefetchIterator(sample, device_put=lambda b: b, depth=1)
    started.wait(5)
    it.close()
    assert not it._thread.is_alive()
