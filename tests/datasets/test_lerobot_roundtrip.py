"""Export -> import -> export gives back the same transitions (frames within the codec's error), for
a demos folder through the real `serl export` command and for a run's buffers: episodes of two
actors interleaved in the online buffer, intervention fragments in the demo buffer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import SIX_AXES, STEPS, short_config

from serl.commands.export import main as export_main
from serl.commands.import_demos import main as import_main
from serl.config_io import config_record
from serl.data import ReplayStorage, take
from serl.data.demos import load_demos
from serl.datasets.export import export_demos
from serl.datasets.features import task_spec
from serl.datasets.reader import LeRobotReader

ROOT = Path(__file__).resolve().parents[2]
# frames through H.264 at the default quality: mean error in grey levels, and the 99th percentile
MEAN_ERROR, P99_ERROR = 3.0, 40


def episodes(folder: Path) -> list[dict]:
    batches, problems = load_demos(folder, task_spec(short_config()))
    assert not problems
    return sorted(batches.values(), key=lambda b: (int(b["episode_id"][0]), int(b["step"][0])))


def assert_same_transitions(got: dict, want: dict) -> None:
    """Every field equal; camera frames within the codec's error."""
    for key, value in want.items():
        if key not in ("observations", "next_observations"):
            np.testing.assert_array_equal(got[key], value, err_msg=key)
            continue
        for obs_key, frames in value.items():
            if obs_key == "state":
                np.testing.assert_array_equal(got[key][obs_key], frames)
                continue
            error = np.abs(got[key][obs_key].astype(int) - frames.astype(int))
            assert error.mean() < MEAN_ERROR and np.percentile(error, 99) < P99_ERROR, (
                key, obs_key, error.mean())


@pytest.mark.timeout(90)
def test_demos_export_import_export(demos, exported, tmp_path):
    # the real command, in its own process, on the same demos: the same data as the fixture's
    out = tmp_path / "by_command"
    run = subprocess.run([sys.executable, "-m", "serl.cli", "export", str(demos), str(out),
                          "--format", "lerobot", "--instruction", "pick up the cube",
                          "--env.max-episode-steps", str(STEPS), *SIX_AXES], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "exported 16/16 transitions | 2 episodes" in run.stdout
    assert "wrote 2 episodes" in run.stdout
    data = "data/chunk-000/file-000.parquet"
    assert pq.read_table(out / data).equals(pq.read_table(exported / data))

    imported = tmp_path / "imported"
    assert import_main([str(exported), "sim_pick_cube", *SIX_AXES, "--demos-dir",
                        str(imported)]) == 0
    for got, want in zip(episodes(imported), episodes(demos), strict=True):
        assert_same_transitions(got, want)

    again = tmp_path / "again"
    export_demos(imported, again, short_config(), "pick up the cube", progress=lambda _: None)
    assert pq.read_table(again / data).equals(pq.read_table(exported / data))
    first, second = LeRobotReader(exported), LeRobotReader(again)
    for a, b in zip(first.episodes, second.episodes, strict=True):
        for key in first.video_keys:  # a second pass through the codec stays within the bound
            error = np.abs(first.frames(a, key).astype(int) - second.frames(b, key).astype(int))
            assert error.mean() < MEAN_ERROR, (key, error.mean())
    first.close()
    second.close()


def make_run(run: Path, recorded: list[dict]) -> None:
    """A run folder as the learner leaves it: config.json, and buffers holding the recorded
    episodes as two actors' interleaved batches (online) and two intervention fragments of the
    first (demo)."""
    config = short_config()
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config_record(config, "sim_pick_cube")))
    spec = task_spec(config)
    with ReplayStorage(run / "buffers/online", spec, 1000, chunk_size=4) as online:
        for start in range(0, STEPS, 3):
            for actor, batch in zip(("actor-a", "actor-b"), recorded, strict=True):
                online.append(take(batch, slice(start, start + 3)), actor, start)
    keep = np.zeros(STEPS, bool)
    keep[[2, 3, 4, 6, 7]] = True
    with ReplayStorage(run / "buffers/demo", spec, 1000, chunk_size=4) as demo:
        demo.append(recorded[0], "actor-a", 0, keep=keep)


@pytest.mark.timeout(90)
def test_run_buffers_export_import(demos, tmp_path, capsys):
    recorded = episodes(demos)
    make_run(tmp_path / "run", recorded)
    out = tmp_path / "dataset"
    assert export_main([str(tmp_path / "run"), str(out), "--buffers", "both"]) == 0
    printed = capsys.readouterr().out
    assert f"exported {2 * STEPS + 5}/{2 * STEPS + 5} transitions | 4 episodes" in printed
    table = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in table] == [STEPS + 1, STEPS + 1, 4, 3]
    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    demo_flags = [data["serl.demo"][e["dataset_from_index"]] for e in table]
    assert demo_flags == [False, False, True, True]

    imported = tmp_path / "imported"
    assert import_main([str(out), "sim_pick_cube", *SIX_AXES, "--demos-dir", str(imported)]) == 0
    got = episodes(imported)
    want = [recorded[0], take(recorded[0], slice(2, 5)), take(recorded[0], slice(6, 8)),
            recorded[1]]
    assert len(got) == 4
    for g, w in zip(got, want, strict=True):
        assert_same_transitions(g, w)


@pytest.mark.timeout(60)
def test_small_file_limits_roll_data_and_video_files(demos, tmp_path):
    """Past the size limits each episode opens new files, as upstream does; the reader follows the
    episode table into them."""
    from serl.datasets.export import export_episodes
    from serl.datasets.features import TaskFeatures
    from serl.datasets.sources import demo_episodes

    features = TaskFeatures.of(short_config())
    source = demo_episodes(demos, features.spec, print)
    # limits of 0 MiB: every episode starts new files
    export_episodes(source, tmp_path / "rolled", features, "t", progress=lambda _: None,
                    file_mb=(0.0, 0.0))
    files = sorted(p.relative_to(tmp_path / "rolled").as_posix()
                   for p in (tmp_path / "rolled").rglob("file-*"))
    assert "data/chunk-000/file-001.parquet" in files
    assert "videos/observation.images.wrist/chunk-000/file-001.mp4" in files
    table = pq.read_table(tmp_path / "rolled/meta/episodes/chunk-000/file-000.parquet")
    assert table.column("data/file_index").to_pylist() == [0, 1]
    assert table.column("videos/observation.images.front/from_timestamp").to_pylist() == [0, 0]
    imported = tmp_path / "imported"
    assert import_main([str(tmp_path / "rolled"), "sim_pick_cube", *SIX_AXES, "--demos-dir",
                        str(imported)]) == 0
    for got, want in zip(episodes(imported), episodes(demos), strict=True):
        assert_same_transitions(got, want)
