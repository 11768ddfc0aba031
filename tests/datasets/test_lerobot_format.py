"""The export is a LeRobotDataset v3.0 as upstream lays it out, checked with pyarrow and a video
decoder (not through this project's reader): info.json, the data schema, the episode and task
tables, frame counts, timestamps at the control rate, statistics, and mp4 streams of the cameras'
size whose frame i is at i / fps."""

from __future__ import annotations

import json
import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import STEPS, short_config

from serl.data.demos import load_demos
from serl.datasets.features import task_spec


def frame_times(path) -> list[float]:
    """Presentation times of every frame of a video, as ffmpeg decodes it."""
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-vf",
                          "showinfo", "-f", "null", "-"], capture_output=True, text=True,
                         timeout=60)
    return [float(t) for t in re.findall(r"pts_time:([0-9.]+)", out.stderr)]


def decode(path) -> np.ndarray:
    frames = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(frames)
    width, height = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in frames])


def episodes_in_order(demos):
    batches, problems = load_demos(demos, task_spec(short_config()))
    assert not problems
    return [batches[k] for k in sorted(batches)]


@pytest.mark.timeout(60)
def test_info_schema_and_episode_table(demos, exported):
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert info["total_episodes"] == 2 and info["total_frames"] == 2 * (STEPS + 1)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == ("videos/{video_key}/chunk-{chunk_index:03d}/"
                                  "file-{file_index:03d}.mp4")
    features = info["features"]
    state = features["observation.state"]
    assert state["shape"] == [19] and state["names"][:3] == ["tcp_pose.x", "tcp_pose.y",
                                                             "tcp_pose.z"]
    assert state["names"][-1] == "tcp_torque.z" and "gripper_pose" in state["names"]
    assert features["action"]["names"] == ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    for cam in ("front", "wrist"):
        video = features[f"observation.images.{cam}"]
        assert video["dtype"] == "video" and video["shape"] == [128, 128, 3]
        assert video["info"]["video.codec"] == "h264" and video["info"]["video.fps"] == 10
    for name in ("next.reward", "next.done", "next.terminated", "next.truncated", "next.success",
                 "serl.intervened", "serl.policy_version", "serl.classifier_version",
                 "serl.timestamp", "timestamp", "frame_index", "episode_index", "index",
                 "task_index"):
        assert name in features, name

    table = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    assert table.schema.field("observation.state").type == pa.list_(pa.float32(), 19)
    assert table.schema.field("action").type == pa.list_(pa.float32(), 7)
    assert table.schema.field("next.done").type == pa.bool_()
    assert table.schema.field("timestamp").type == pa.float32()
    assert not any(n.startswith("observation.images") for n in table.column_names)
    assert table.num_rows == info["total_frames"]
    data = table.to_pydict()
    np.testing.assert_array_equal(data["index"], np.arange(table.num_rows))
    frame = np.asarray(data["frame_index"])
    np.testing.assert_allclose(data["timestamp"], frame / 10, atol=1e-6)
    assert set(data["task_index"]) == {0}

    episodes = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1]
    assert [e["dataset_from_index"] for e in episodes] == [0, STEPS + 1]
    assert [e["dataset_to_index"] - e["dataset_from_index"] for e in episodes] == [STEPS + 1] * 2
    assert all(e["length"] == STEPS + 1 and e["tasks"] == ["pick up the cube"] for e in episodes)
    key = "videos/observation.images.front"
    assert [(e[f"{key}/from_timestamp"], e[f"{key}/to_timestamp"]) for e in episodes] == [
        (0.0, (STEPS + 1) / 10), ((STEPS + 1) / 10, 2 * (STEPS + 1) / 10)]
    assert episodes[0]["stats/action/count"] == [STEPS + 1]
    # each episode: its transitions, then its final observation (a zero action)
    originals = episodes_in_order(demos)
    for e, batch in zip(episodes, originals, strict=True):
        rows = slice(e["dataset_from_index"], e["dataset_to_index"])
        final = np.asarray(data["serl.final_observation"][rows])
        assert final[-1] and not final[:-1].any()
        np.testing.assert_array_equal(np.asarray(data["action"][rows])[:-1], batch["actions"])
        np.testing.assert_array_equal(np.asarray(data["observation.state"][rows])[-1],
                                      batch["next_observations"]["state"][-1])
        np.testing.assert_array_equal(data["next.done"][rows][:-1], batch["dones"])

    tasks = pq.read_table(exported / "meta/tasks.parquet")
    pandas = json.loads(tasks.schema.metadata[b"pandas"])
    index = pandas["index_columns"][0]
    assert tasks.column(index).to_pylist() == ["pick up the cube"]
    assert tasks.column("task_index").to_pylist() == [0]


@pytest.mark.timeout(60)
def test_videos_decode_at_the_right_size_and_times(demos, exported):
    originals = episodes_in_order(demos)
    for cam in ("front", "wrist"):
        path = exported / f"videos/observation.images.{cam}/chunk-000/file-000.mp4"
        frames = decode(path)
        assert frames.shape == (2 * (STEPS + 1), 128, 128, 3)
        np.testing.assert_allclose(frame_times(path), np.arange(len(frames)) / 10, atol=1e-6)
        source = np.concatenate([np.concatenate([b["observations"][cam],
                                                 b["next_observations"][cam][-1:]])
                                 for b in originals])
        error = np.abs(frames.astype(int) - source.astype(int))
        assert error.mean() < 3.0 and np.percentile(error, 99) < 40, (error.mean(), cam)


@pytest.mark.timeout(60)
def test_statistics_cover_every_feature(demos, exported):
    stats = json.loads((exported / "meta/stats.json").read_text())
    info = json.loads((exported / "meta/info.json").read_text())
    assert set(stats) == set(info["features"])
    for name, s in stats.items():
        assert set(s) == {"min", "max", "mean", "std", "count"}, name
        assert s["count"] == [info["total_frames"]]
    image = stats["observation.images.front"]
    assert np.asarray(image["mean"]).shape == (3, 1, 1)
    originals = episodes_in_order(demos)
    frames = np.concatenate([np.concatenate([b["observations"]["front"],
                                             b["next_observations"]["front"][-1:]])
                             for b in originals]) / 255.0
    np.testing.assert_allclose(np.asarray(image["mean"]).ravel(), frames.mean(axis=(0, 1, 2)),
                               atol=1e-9)
    np.testing.assert_allclose(np.asarray(image["std"]).ravel(), frames.std(axis=(0, 1, 2)),
                               atol=1e-9)
    states = np.concatenate([np.concatenate([b["observations"]["state"],
                                             b["next_observations"]["state"][-1:]])
                             for b in originals]).astype(np.float64)
    s = stats["observation.state"]
    np.testing.assert_allclose(s["mean"], states.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(s["std"], states.std(axis=0), atol=1e-9)
    np.testing.assert_allclose(s["min"], states.min(axis=0), atol=0)
    np.testing.assert_allclose(s["max"], states.max(axis=0), atol=0)


def test_action_names_follow_the_commanded_axes():
    from dataclasses import replace

    import experiments
    from serl.datasets.features import TaskFeatures

    pick = short_config()
    pick = replace(pick, wrappers=replace(pick.wrappers, arm_axes=("x", "y", "z", "yaw")))
    assert TaskFeatures.of(pick).action_names == ("x", "y", "z", "yaw", "gripper")
    peg = TaskFeatures.of(experiments.load("sim_peg_insert"))  # the gripper stays closed
    assert peg.action_names == ("x", "y", "z", "yaw")
    assert peg.features()["action"]["shape"] == [4]


@pytest.mark.timeout(60)
def test_demos_of_another_spec_are_refused_naming_it(demos, tmp_path, capsys):
    from serl.commands.export import main as export_main

    code = export_main([str(demos), str(tmp_path / "out"), "--wrappers.arm-axes", "x", "y", "z",
                        "yaw"])
    assert code == 2 and not (tmp_path / "out").exists()
    assert "7-D actions, this config's are 5-D" in capsys.readouterr().err
