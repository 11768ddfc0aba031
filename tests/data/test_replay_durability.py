"""Durability and exactly-once: torn tails are cut, committed data survives, duplicates
are dropped after restarts."""

from __future__ import annotations

import numpy as np
import pytest
from replay_helpers import SMALL_SPEC, assert_rows_equal, episode

import serl.data.commit_log as commit_log
from serl.data import ReplayStorage, stack

CHUNK = 4


def two_batches(tmp_path):
    """Append 6 then 5 transitions (crossing chunk boundaries), close; return them."""
    rng = np.random.default_rng(1)
    first, second = episode(rng, SMALL_SPEC, 0, 6), episode(rng, SMALL_SPEC, 1, 5)
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        storage.append(first, "a", 0)
        storage.append(second, "a", 6)
    return first, second


def truncate_last_record(path):
    data = path.read_bytes()
    path.write_bytes(data[:-3])


def flip_byte_in_last_record(path):
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def half_record_appended(path):
    data = path.read_bytes()
    path.write_bytes(data + commit_log.encode_record(99, 99, "a", 99)[:11])


@pytest.mark.timeout(20)
@pytest.mark.parametrize("damage", [truncate_last_record, flip_byte_in_last_record])
def test_torn_tail_loses_only_the_last_batch(tmp_path, damage):
    first, second = two_batches(tmp_path)
    damage(tmp_path / "commits.log")
    for folder in ("slots", "rows"):  # garbage past the committed data, as after a crash mid-write
        last = sorted((tmp_path / folder).glob("*.bin"))[-1]
        with open(last, "ab") as f:
            f.write(b"\xde\xad" * 1000)
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        assert len(storage) == 6 and storage.watermarks() == {"a": 5}
        assert_rows_equal(storage.get(range(6)), first)
        result = storage.append(second, "a", 6)  # the actor resends what was never acknowledged
        assert (result.appended, result.duplicates) == (5, 0)
        assert_rows_equal(storage.get(range(11)), first + second)
        assert storage.n_slots == 6 + 1 + 5 + 1
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        assert_rows_equal(storage.get(range(11)), first + second)


@pytest.mark.timeout(20)
def test_partial_record_is_cut_and_nothing_committed_is_lost(tmp_path):
    first, second = two_batches(tmp_path)
    half_record_appended(tmp_path / "commits.log")
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        assert len(storage) == 11 and storage.watermarks() == {"a": 10}
        assert_rows_equal(storage.get(range(11)), first + second)
        storage.append(episode(np.random.default_rng(2), SMALL_SPEC, 2, 2), "a", 11)
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        assert len(storage) == 13


@pytest.mark.timeout(20)
def test_corruption_before_intact_records_is_refused(tmp_path):
    two_batches(tmp_path)
    data = bytearray((tmp_path / "commits.log").read_bytes())
    data[8] ^= 0xFF  # inside the first record; the second is intact
    (tmp_path / "commits.log").write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="not a torn write"):
        ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK)


@pytest.mark.timeout(20)
def test_exactly_once_across_restarts(tmp_path):
    ts = episode(np.random.default_rng(3), SMALL_SPEC, 0, 15)
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        assert storage.append(ts[:10], "a", 0).appended == 10
        again = storage.append(ts[:10], "a", 0)
        assert (again.appended, again.duplicates, again.watermark) == (0, 10, 9)
        overlap = storage.append(stack(ts[5:15]), "a", 5)
        assert (overlap.appended, overlap.duplicates, overlap.watermark) == (5, 5, 14)
        assert storage.append(ts[:3], "b", 0).appended == 3  # watermarks are per actor
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        assert storage.watermarks() == {"a": 14, "b": 2}
        assert storage.append(ts[10:15], "a", 10).duplicates == 5
        assert len(storage) == 18
        assert_rows_equal(storage.get(range(15)), ts)
        assert storage.origins([0, 14, 15]) == [("a", 0), ("a", 14), ("b", 0)]


@pytest.mark.timeout(20)
def test_long_commit_log_is_compacted_on_open(tmp_path, monkeypatch):
    monkeypatch.setattr(commit_log, "COMPACT_AFTER_RECORDS", 5)
    ts = episode(np.random.default_rng(4), SMALL_SPEC, 0, 12)
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        for i in range(12):
            storage.append(ts[i:i + 1], "a" if i % 3 else "b", i)
        marks = storage.watermarks()
    size_before = (tmp_path / "commits.log").stat().st_size
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        assert (tmp_path / "commits.log").stat().st_size < size_before / 3
        assert storage.watermarks() == marks and list(storage.watermarks()) == list(marks)
        assert_rows_equal(storage.get(range(12)), ts)
        assert storage.origins([0, 1]) == [("b", 0), ("a", 1)]  # actor indices keep their order
        storage.append(ts[:1], "a", 12)
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK) as storage:
        assert len(storage) == 13


@pytest.mark.timeout(10)
def test_folder_with_another_layout_is_refused(tmp_path):
    two_batches(tmp_path)
    with pytest.raises(ValueError, match="chunk_size"):
        ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK + 1)
    other = type(SMALL_SPEC)(dict(SMALL_SPEC.observation_spec), action_dim=3)
    with pytest.raises(ValueError, match="spec"):
        ReplayStorage(tmp_path, other, 100, CHUNK)


@pytest.mark.timeout(10)
def test_a_folder_has_one_writer_at_a_time(tmp_path):
    with ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK):
        with pytest.raises(RuntimeError, match="already open"):
            ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK)
    ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK).close()  # released on close


@pytest.mark.timeout(10)
def test_a_missing_chunk_file_is_reported_on_open(tmp_path):
    two_batches(tmp_path)
    (tmp_path / "slots" / "00000001.bin").unlink()
    with pytest.raises(RuntimeError, match=r"slots: chunk files \[1\] are missing"):
        ReplayStorage(tmp_path, SMALL_SPEC, 100, CHUNK)
