"""One thread appends while another samples: no errors, only committed rows, append
latency stays bounded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from replay_helpers import assert_trees_equal, camera_spec, episode

import serl.data.snapshot as snapshot_module
from serl.data import ReplayStorage

SPEC = camera_spec(64)
LENGTH = 20  # steps per episode


class Stream:
    """Transition i (uid i) of an endless stream, built from a pool of episodes so it
    costs no generation time."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.pool = [episode(rng, SPEC, 0, LENGTH) for _ in range(8)]

    def __call__(self, i: int) -> dict:
        base = self.pool[(i // LENGTH) % len(self.pool)][i % LENGTH]
        return dict(base, episode_id=np.int64(i // LENGTH), timestamp=np.float64(i))


def row_of(batch: dict, row: int) -> dict:
    return {k: {o: w[row] for o, w in v.items()} if isinstance(v, dict) else v[row]
            for k, v in batch.items()}


def timed_appends(storage: ReplayStorage, stream: Stream, start: int, count: int, batch: int,
                  submitted: list[int]) -> list[float]:
    latencies = []
    for first in range(start, start + count, batch):
        # before the call: a sampler may see these rows once they are committed
        submitted[0] = first + batch
        t0 = time.perf_counter()
        storage.append([stream(i) for i in range(first, first + batch)], "a", first)
        latencies.append(time.perf_counter() - t0)
    return latencies


@pytest.mark.timeout(60)
def test_append_while_sampling(tmp_path):
    stream, submitted, errors, samples = Stream(), [0], [], [0]
    storage = ReplayStorage(tmp_path, SPEC, capacity=1000, chunk_size=64)
    timed_appends(storage, stream, 0, 200, 4, submitted)
    quiet = timed_appends(storage, stream, 200, 600, 4, submitted)
    stop = threading.Event()

    def sampler() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            try:
                batch = storage.sample(256, rng)
                limit = submitted[0]
                for row in range(0, 256, 32):
                    uid = int(batch["timestamp"][row])
                    assert uid < limit, f"row {uid} sampled before it was appended"
                    assert_trees_equal(row_of(batch, row), stream(uid))
                samples[0] += 1
            except BaseException as e:  # reported by the main thread
                errors.append(e)
                return

    thread = threading.Thread(target=sampler)
    thread.start()
    busy, next_first, t_end = [], 800, time.perf_counter() + 2.0
    while time.perf_counter() < t_end and not errors:
        busy += timed_appends(storage, stream, next_first, 40, 4, submitted)
        next_first += 40
    stop.set()
    thread.join()
    storage.close()
    assert not errors, errors[0]
    assert samples[0] > 10 and len(storage) == next_first
    p99_quiet, p99_busy = np.percentile(quiet, 99), np.percentile(busy, 99)
    # loose floor: the disk and CPU are shared
    assert p99_busy < max(10 * p99_quiet, 0.5), (p99_quiet, p99_busy)


@pytest.mark.timeout(20)
def test_a_stalled_sampler_does_not_block_appends(tmp_path, monkeypatch):
    """Samplers read without holding the writer's lock: an append completes while a
    gather is stuck mid-way."""
    stream, submitted = Stream(), [0]
    storage = ReplayStorage(tmp_path, SPEC, capacity=100, chunk_size=16)
    timed_appends(storage, stream, 0, 40, 4, submitted)
    inside, release = threading.Event(), threading.Event()
    real_read_field = snapshot_module.read_field

    def stalling_read_field(*args):
        if threading.current_thread().name == "sampler":
            inside.set()
            release.wait(10)
        return real_read_field(*args)

    monkeypatch.setattr(snapshot_module, "read_field", stalling_read_field)
    result = {}
    sample = lambda: result.update(b=storage.sample(8, np.random.default_rng(0)))
    thread = threading.Thread(target=sample, name="sampler")
    thread.start()
    assert inside.wait(10)
    # the window moves and old chunks go meanwhile
    timed_appends(storage, stream, 40, 80, 4, submitted)
    release.set()
    thread.join()
    # deleted while the sampler still mapped it
    assert not (tmp_path / "rows" / "00000000.bin").exists()
    batch = result["b"]
    for row, uid in enumerate(batch["timestamp"].astype(int)):
        assert uid < 40  # the sampler read its own, older snapshot, intact
        assert_trees_equal(row_of(batch, row), stream(uid))
    assert len(storage) == 120
    storage.close()
