"""Storage behaviour: frames stored once, validation at append, the capacity window,
the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
from replay_helpers import SMALL_SPEC, assert_rows_equal, camera_spec, episode

from serl.data import ReplayStorage, stack


@pytest.mark.timeout(30)
def test_frames_are_stored_once(tmp_path):
    spec, rng = camera_spec(128), np.random.default_rng(0)
    with ReplayStorage(tmp_path, spec, 10_000, chunk_size=64) as storage:
        episode_id = 0
        while len(storage) < 200:
            ts = episode(rng, spec, episode_id, int(rng.integers(10, 31)))
            for i in range(0, len(ts), 8):
                storage.append(ts[i:i + 8], "a", len(storage))
            episode_id += 1
        raw_obs = 2 * 128 * 128 * 3 + 19 * 4
        usage = storage.bytes_on_disk()
        assert usage.frames_and_state / len(storage) <= 1.1 * raw_obs
        assert storage.n_slots == len(storage) + episode_id
        # rows are ~100 bytes; the rest is the log and storage.json
        assert usage.metadata / len(storage) < 300
        assert usage.features == 0


def fresh_storage(tmp_path, **kwargs):
    return ReplayStorage(tmp_path, SMALL_SPEC, 100, 4, **kwargs)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("as_batch", [False, True])
def test_invalid_batch_is_refused_whole(tmp_path, as_batch):
    ts = episode(np.random.default_rng(1), SMALL_SPEC, 0, 4)
    ts[2]["observations"] = dict(ts[2]["observations"], state=np.full(3, np.nan, np.float32))
    with fresh_storage(tmp_path) as storage:
        with pytest.raises(ValueError, match="row 2 .*observations/state: non-finite"):
            storage.append(stack(ts) if as_batch else ts, "a", 0)
        assert len(storage) == 0 and storage.watermarks() == {}
        ts[3]["rewards"] = np.float64(0)
        with pytest.raises(ValueError, match="rewards: dtype float64"):
            storage.append(ts[3:], "a", 3)
        assert storage.bytes_on_disk().frames_and_state == 0


@pytest.mark.timeout(10)
def test_invalid_transitions_can_be_dropped_and_counted(tmp_path):
    ts = episode(np.random.default_rng(2), SMALL_SPEC, 0, 5)
    ts[1]["actions"] = np.array([np.inf, 0], np.float32)
    ts[3]["observations"] = dict(ts[3]["observations"], front=np.zeros((4, 4), np.uint8))
    with fresh_storage(tmp_path) as storage:
        result = storage.append(ts, "a", 0, on_invalid="drop")
        assert (result.appended, result.invalid, result.watermark) == (3, 2, 4)
        assert "actions: non-finite" in result.first_error
        assert storage.origins(range(3)) == [("a", 0), ("a", 2), ("a", 4)]
        assert_rows_equal(storage.get(range(3)), [ts[0], ts[2], ts[4]])
        batch = stack(episode(np.random.default_rng(3), SMALL_SPEC, 1, 3))
        batch["rewards"][:] = np.nan
        # all invalid: the watermark still moves
        result = storage.append(batch, "a", 5, on_invalid="drop")
        assert (result.appended, result.invalid, result.watermark) == (0, 3, 7)
    with fresh_storage(tmp_path) as storage:
        assert storage.watermarks() == {"a": 7} and len(storage) == 3


@pytest.mark.timeout(20)
def test_window_slides_and_old_chunks_are_deleted(tmp_path):
    rng = np.random.default_rng(4)
    naive = []
    with ReplayStorage(tmp_path, SMALL_SPEC, capacity=20, chunk_size=5) as storage:
        with pytest.raises(ValueError, match="empty"):
            storage.sample(4, rng)
        for episode_id in range(25):
            ts = episode(rng, SMALL_SPEC, episode_id, 4)
            storage.append(ts, "a", len(naive))
            naive += ts
            assert len(list((tmp_path / "rows").glob("*.bin"))) <= 20 // 5 + 1
            assert len(list((tmp_path / "slots").glob("*.bin"))) <= 2 * 20 // 5 + 2
        assert (len(storage), storage.size) == (100, 20)
        assert_rows_equal(storage.get(range(80, 100)), naive[80:])
        with pytest.raises(IndexError):
            storage.get([79])
        sampled = set(storage.sample(64, rng)["timestamp"])
        assert sampled <= {float(t["timestamp"]) for t in naive[80:]}
    # capacity may change
    with ReplayStorage(tmp_path, SMALL_SPEC, capacity=7, chunk_size=5) as storage:
        assert storage.size == 7
        assert_rows_equal(storage.get(range(93, 100)), naive[93:])


def mean_features(calls):
    def fn(obs):
        calls.append(len(obs["front"]))
        front = obs["front"].reshape(len(obs["front"]), -1)
        return {"front_mean": front.mean(axis=1, keepdims=True),
                # cast to the declared dtype
                "state_sum": obs["state"].sum(axis=1).astype(np.float64)}
    return fn


FEATURES = {"front_mean": ((1,), np.float32), "state_sum": ((), np.float32)}


@pytest.mark.timeout(10)
def test_features_are_computed_once_per_slot_and_sampled(tmp_path):
    calls, rng = [], np.random.default_rng(5)
    ts = episode(rng, SMALL_SPEC, 0, 6)
    kwargs = {"features": FEATURES, "feature_fn": mean_features(calls),
              "drop_images_in_samples": True}
    with fresh_storage(tmp_path, **kwargs) as storage:
        storage.append(ts[:4], "a", 0)
        storage.append(ts[4:], "a", 4)
        assert calls == [5, 2]  # batched per append, one entry per new slot
        sample = storage.sample(16, rng)
        assert sorted(sample["observations"]) == ["front_mean", "state", "state_sum"]
        by_uid = {float(t["timestamp"]): t for t in ts}
        for i, uid in enumerate(sample["timestamp"]):
            for key in ("observations", "next_observations"):
                obs = by_uid[float(uid)][key]
                assert sample[key]["front_mean"][i, 0] == np.float32(obs["front"].mean())
                assert sample[key]["state_sum"][i] == np.float32(obs["state"].sum())
        assert "front" in storage.get([0])["observations"]  # audits still see the frames
        assert storage.bytes_on_disk().features > 0
    with pytest.raises(ValueError, match="features"):
        fresh_storage(tmp_path)  # the folder has features; opening it without them is refused


@pytest.mark.timeout(10)
def test_failing_feature_function_writes_nothing(tmp_path):
    bad = lambda obs: {"front_mean": np.zeros((1, 1), np.float32),
                       "state_sum": np.zeros(1, np.float32)}
    ts = episode(np.random.default_rng(6), SMALL_SPEC, 0, 3)
    with fresh_storage(tmp_path, features=FEATURES, feature_fn=bad) as storage:
        with pytest.raises(ValueError, match="front_mean.*shape"):
            storage.append(ts, "a", 0)
        assert len(storage) == 0 and storage.watermarks() == {}


@pytest.mark.timeout(10)
def test_keep_mask_stores_a_subset_and_the_watermark_covers_the_batch(tmp_path):
    ts = episode(np.random.default_rng(7), SMALL_SPEC, 0, 8)
    intervened = np.array([t["intervened"] for t in ts])  # every other step
    with fresh_storage(tmp_path) as demo:
        result = demo.append(stack(ts), "a", 0, keep=intervened)
        assert (result.appended, result.skipped, result.watermark) == (4, 4, 7)
        assert demo.origins(range(4)) == [("a", i) for i in np.flatnonzero(intervened)]
        assert_rows_equal(demo.get(range(4)), [t for t in ts if t["intervened"]])
        assert demo.n_slots == 8  # steps 1, 3, 5, 7 are not consecutive: none shares a slot
        assert demo.append(stack(ts), "a", 0, keep=intervened).duplicates == 8
    with fresh_storage(tmp_path) as demo:
        assert demo.watermarks() == {"a": 7}


@pytest.mark.timeout(10)
def test_malformed_batch_dict_is_refused_or_dropped_whole(tmp_path):
    batch = stack(episode(np.random.default_rng(8), SMALL_SPEC, 0, 4))
    batch["masks"] = 1.0  # not even an array
    with fresh_storage(tmp_path) as storage:
        with pytest.raises(ValueError, match="masks: expected a numpy float32 value"):
            storage.append(batch, "a", 0)
        result = storage.append(batch, "a", 0, on_invalid="drop")
        assert (result.appended, result.invalid, result.watermark) == (0, 4, 3)


@pytest.mark.timeout(10)
def test_cached_features_are_pinned_to_the_trunk_that_computed_them(tmp_path):
    import json

    from serl.data.layout import StorageLayout

    features = {"cam_features": ((4,), np.float16)}
    StorageLayout.create(SMALL_SPEC, 8, features, "sha256:aaaa").pin(tmp_path)
    StorageLayout.create(SMALL_SPEC, 8, features, "sha256:aaaa").pin(tmp_path)  # same trunk: opens
    with pytest.raises(ValueError, match="another source.*sha256:aaaa.*sha256:bbbb"):
        StorageLayout.create(SMALL_SPEC, 8, features, "sha256:bbbb").pin(tmp_path)
    stored = json.loads((tmp_path / "storage.json").read_text())
    del stored["feature_source"]  # as folders were written before the trunk was recorded
    (tmp_path / "storage.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="before buffers recorded the trunk.*new run"):
        StorageLayout.create(SMALL_SPEC, 8, features, "sha256:aaaa").pin(tmp_path)
