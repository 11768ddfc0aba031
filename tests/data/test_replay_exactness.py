"""Every stored transition reads back exactly as naive (obs, next_obs) storage would return it.

Random episodes (length 1 included) from interleaved actors that share episode ids, with random gaps
between a step's observation and the previous next observation, a small capacity (the window slides,
old chunks are deleted), a small chunk size (batches cross chunk boundaries), resent overlapping
batches, and a close/re-open mid-stream.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replay_helpers import SMALL_SPEC, assert_rows_equal, episode

from serl.data import ReplayStorage, stack

GAPS = ("none", "none", "none", "fresh", "one_byte", "negative_zero")


@st.composite
def scenarios(draw):
    n_actors = draw(st.integers(1, 3))
    return {
        "lengths": [draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
                    for _ in range(n_actors)],
        # wrapping, or keeping everything
        "capacity": draw(st.one_of(st.integers(1, 30), st.just(1000))),
        "chunk_size": draw(st.integers(1, 5)),
        "gaps": draw(st.sampled_from([("none",), GAPS])),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "schedule": draw(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 5)),
                                  min_size=1, max_size=12)),
        "reopen_at": draw(st.integers(0, 10)),
        "resend_every": draw(st.sampled_from([0, 2, 3])),
    }


def actor_streams(sc: dict) -> list[list[dict]]:
    rng = np.random.default_rng(sc["seed"])
    streams = []
    for a, lengths in enumerate(sc["lengths"]):
        stream: list[dict] = []
        # episode ids overlap across actors on purpose
        for episode_id, length in enumerate(lengths):
            stream += episode(rng, SMALL_SPEC, episode_id, length, sc["gaps"],
                              uid0=1000 * a + len(stream))
        streams.append(stream)
    return streams


def check(storage: ReplayStorage, naive: list[dict], capacity: int,
          rng: np.random.Generator) -> None:
    assert len(storage) == len(naive)
    assert storage.size == min(len(naive), capacity)
    start = len(naive) - storage.size
    assert_rows_equal(storage.get(np.arange(start, len(naive))), naive[start:])
    by_uid = {float(t["timestamp"]): t for t in naive[start:]}
    sample = storage.sample(8, rng)
    assert_rows_equal(sample, [by_uid[float(u)] for u in sample["timestamp"]])


@pytest.mark.timeout(60)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios())
def test_reads_back_exactly(sc: dict) -> None:
    streams, rng = actor_streams(sc), np.random.default_rng(0)
    cursors, naive, turn = [0] * len(streams), [], 0
    with tempfile.TemporaryDirectory() as tmp:
        open_storage = lambda: ReplayStorage(tmp, SMALL_SPEC, sc["capacity"], sc["chunk_size"])
        storage = open_storage()
        while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
            a, size = sc["schedule"][turn % len(sc["schedule"])]
            a = next(i % len(streams) for i in range(a, a + len(streams))
                     if cursors[i % len(streams)] < len(streams[i % len(streams)]))
            first = cursors[a]
            if sc["resend_every"] and turn % sc["resend_every"] == 0:
                # overlaps what was acknowledged: the overlap must be dropped
                first = max(0, first - 2)
            part = streams[a][first:first + size]
            result = storage.append(stack(part) if turn % 2 else part, f"actor-{a}", first)
            assert result.duplicates == min(cursors[a] - first, len(part))
            assert result.appended == len(part) - result.duplicates
            naive += part[result.duplicates:]
            cursors[a] = max(cursors[a], first + len(part))
            if turn == sc["reopen_at"]:
                storage.close()
                storage = open_storage()
            check(storage, naive, sc["capacity"], rng)
            turn += 1
        storage.close()
        storage = open_storage()
        check(storage, naive, sc["capacity"], rng)
        assert storage.watermarks() == {f"actor-{a}": len(s) - 1 for a, s in enumerate(streams)}
        if sc["gaps"] == ("none",) and sc["capacity"] >= len(naive):
            # T + 1 per episode
            assert storage.n_slots == len(naive) + sum(len(x) for x in sc["lengths"])
        storage.close()
