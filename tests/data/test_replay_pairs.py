"""Pairs by identity: a transition whose observations are the very read-only objects its
predecessor was given as next observations links to that slot without comparing bytes, within a
batch and across batches; after a restart the bytes decide, and `continued_observation` hands
back exactly the stored next observations of the named predecessor, or nothing. Buffers sharing a
`FeatureMemo` compute an observation's features once."""

import numpy as np
import pytest
from replay_helpers import SMALL_SPEC, assert_rows_equal, episode

from serl.data import ReplayStorage
from serl.data.feature_memo import FeatureMemo
from serl.data.layout import StorageLayout


def frozen(transitions: list[dict]) -> list[dict]:
    """The episode as a receiver gets it: read-only arrays, each observation shared by the pair."""
    for t in transitions:
        for obs in (t["observations"], t["next_observations"]):
            for value in obs.values():
                value.flags.writeable = False
    return transitions


def no_bytes(self, observations, row):
    raise AssertionError("compared bytes")


@pytest.mark.timeout(20)
def test_pairs_link_by_identity_across_batches_and_by_bytes_after_a_restart(tmp_path,
                                                                           monkeypatch):
    steps = frozen(episode(np.random.default_rng(0), SMALL_SPEC, 3, 12))
    with monkeypatch.context() as patch:
        patch.setattr(StorageLayout, "record_bytes", no_bytes)
        with ReplayStorage(tmp_path, SMALL_SPEC, 100) as storage:
            storage.append(steps[:4], "a", 0)
            storage.append(steps[4:8], "a", 4)
            assert storage.n_slots == 9
            # a copy is not the same object: identity cannot decide, so the bytes would
            copied = steps[8] | {"observations": dict(steps[8]["observations"],
                                                      state=steps[8]["observations"]["state"]
                                                      .copy())}
            with pytest.raises(AssertionError, match="compared bytes"):
                storage.append([copied], "a", 8)
    with ReplayStorage(tmp_path, SMALL_SPEC, 100) as storage:
        assert storage.continued_observation("a", 6, 3, 8) is None  # not the tail
        assert storage.continued_observation("a", 7, 3, 9) is None  # the tail is step 7
        assert storage.continued_observation("b", 7, 3, 8) is None  # no such actor
        tail = storage.continued_observation("a", 7, 3, 8)
        for key, value in steps[7]["next_observations"].items():
            np.testing.assert_array_equal(tail[key], value)
        storage.append([steps[8]], "a", 8)  # after the restart: linked by bytes
    with ReplayStorage(tmp_path, SMALL_SPEC, 100) as storage, monkeypatch.context() as patch:
        continued = steps[9] | {"observations": storage.continued_observation("a", 8, 3, 9)}
        patch.setattr(StorageLayout, "record_bytes", no_bytes)  # the resolved tail: identity
        storage.append([continued], "a", 9)
        storage.append(steps[10:], "a", 10)
        assert storage.n_slots == 13
        assert_rows_equal(storage.get(np.arange(12)), [*steps[:9], continued, *steps[10:]])


@pytest.mark.timeout(20)
def test_intervention_steps_pass_the_feature_function_once_for_both_buffers(tmp_path):
    calls = []

    def features(obs):
        calls.append(len(obs["front"]))
        return {"front_mean": obs["front"].reshape(len(obs["front"]), -1).mean(1, keepdims=True)}

    steps = frozen(episode(np.random.default_rng(1), SMALL_SPEC, 0, 8))  # every other intervened
    intervened = np.array([bool(t["intervened"]) for t in steps])
    memo = FeatureMemo()
    options = {"features": {"front_mean": ((1,), np.float32)}, "feature_fn": features,
               "feature_memo": memo}
    with (ReplayStorage(tmp_path / "online", SMALL_SPEC, 100, **options) as online,
          ReplayStorage(tmp_path / "demo", SMALL_SPEC, 100, **options) as demo):
        online.append(steps, "a", 0)
        demo.append(steps, "a", 0, keep=intervened)
        assert calls == [9] and demo.n_slots == 8  # the demo's 8 slots: all known already
        for storage, rows in ((online, np.arange(8)), (demo, np.arange(4))):
            got = storage.get(rows)
            for top in ("observations", "next_observations"):
                want = got[top]["front"].reshape(len(rows), -1).mean(1, keepdims=True)
                np.testing.assert_allclose(got[top]["front_mean"], want)
