"""Demonstration files: exact round trip, atomic writes, bad files skipped by name,
idempotent loading."""

import numpy as np
import pytest

from serl.data import ReplayStorage, TransitionSpec, stack
from serl.data.demos import load_demos, load_episode, save_episode

SPEC = TransitionSpec({"state": ((3,), np.float32), "cam": ((4, 4, 3), np.uint8)}, action_dim=2)


def episode(length, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (length + 1, 4, 4, 3), dtype=np.uint8)
    states = rng.normal(size=(length + 1, 3)).astype(np.float32)
    steps = []
    for t in range(length):
        steps.append({
            "observations": {"state": states[t], "cam": frames[t]},
            "next_observations": {"state": states[t + 1], "cam": frames[t + 1]},
            "actions": rng.uniform(-1, 1, 2).astype(np.float32),
            "rewards": np.float32(t == length - 1),
            "masks": np.float32(t != length - 1), "dones": np.bool_(t == length - 1),
            "intervened": np.bool_(True),
            "grasp_penalty": np.float32(0), "episode_id": np.int64(seed), "step": np.int32(t),
            "policy_version": np.array([-1, -1], np.int64), "classifier_version": np.int32(0),
            "timestamp": np.float64(t),
        })
    return stack(steps)


def assert_same(a, b):
    for key in a:
        if isinstance(a[key], dict):
            assert_same(a[key], b[key])
        else:
            assert a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.timeout(30)
def test_round_trip_and_bad_files_are_skipped_by_name(tmp_path):
    batches = [episode(5, seed=s) for s in range(3)]
    paths = [save_episode(tmp_path, b, SPEC) for b in batches]
    assert not list(tmp_path.glob("*.tmp"))
    for path, batch in zip(paths, batches, strict=True):
        assert_same(batch, load_episode(path, SPEC))
    paths[1].write_bytes(paths[1].read_bytes()[:500])  # truncated, as by a crash of another tool
    other = TransitionSpec({"state": ((4,), np.float32)}, action_dim=2)
    with pytest.raises(ValueError, match=paths[0].name):
        load_episode(paths[0], other)
    episodes, problems = load_demos(tmp_path, SPEC)
    assert sorted(episodes) == sorted([paths[0].stem, paths[2].stem])
    assert len(problems) == 1 and paths[1].name in problems[0]
    for kept in (0, 2):  # the folder round-trips exactly, the damaged file aside
        assert_same(batches[kept], episodes[paths[kept].stem])


@pytest.mark.timeout(30)
def test_a_non_contiguous_episode_is_refused(tmp_path):
    batch = episode(4)
    batch["next_observations"]["state"][1] += 1.0
    with pytest.raises(ValueError, match="not contiguous"):
        save_episode(tmp_path, batch, SPEC)


@pytest.mark.timeout(30)
def test_loading_into_a_buffer_twice_adds_nothing_twice(tmp_path):
    save_episode(tmp_path / "demos", episode(6), SPEC)
    with ReplayStorage(tmp_path / "buf", SPEC, capacity=100) as demo:
        for expected in (6, 0):
            episodes, _ = load_demos(tmp_path / "demos", SPEC)
            added = sum(demo.append(b, f"demo:{n}", 0).appended for n, b in episodes.items())
            assert added == expected
        assert len(demo) == 6
