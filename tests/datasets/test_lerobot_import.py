"""`serl import-demos`: a dataset that does not fit the task is refused before anything is written,
naming the feature and what to map; a dataset written by the real `lerobot` package (a committed
fixture, made by data/make_lerobot_fixture.py) and a v2.1 layout import too; bad input is a clear
error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import SIX_AXES, short_config

from serl.commands.export import main as export_main
from serl.commands.import_demos import main as import_main
from serl.data.demos import load_demos
from serl.datasets.features import task_spec
from serl.datasets.reader import LeRobotReader
from serl.datasets.video import VideoEncoder

FIXTURE = Path(__file__).parent / "data" / "lerobot_written"


def refused(capsys, argv: list[str], folder: Path) -> str:
    assert import_main(argv) == 2
    assert not list(folder.glob("*.npz")), "a refused import wrote files"
    return capsys.readouterr().err


def scaled_actions(exported: Path, out: Path, factor: float) -> Path:
    shutil.copytree(exported, out)
    path = out / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    actions = np.asarray(table.column("action").to_pylist(), np.float32) * factor
    column = pa.FixedSizeListArray.from_arrays(pa.array(actions.ravel()), actions.shape[1])
    pq.write_table(table.set_column(table.column_names.index("action"), "action", column), path)
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flags, says", [
    (["--state", "observation.gone"],
     ["observation.gone: missing from the dataset", "map `state`", "tcp_pose.x"]),
    (["--state", "action"], ["action: 7 values, this task's state has 19", "map `state`"]),
    (["--wrappers.arm-axes", "x", "y", "z", "yaw"],
     ["action: 7 values, this task's action has 5 (x, y, z, yaw, gripper)", "map `action`"]),
    (["--env.image-size", "64"],
     ["observation.images.front: frames 128x128x3, this task's camera front is 64x64x3",
      "map `cameras.front`", "observation.images.wrist: frames 128x128x3"]),
    (["--camera", "front=observation.images.rear"],
     ["observation.images.rear: no camera feature of that name", "map `cameras.front`"]),
    (["--env.control-hz", "20"],
     ["fps: the dataset runs at 10 fps, this task's control rate is 20 Hz"]),
    (["--reward", "next.bonus"], ["next.bonus: missing from the dataset", "map `reward`",
                                  "success_at_end"]),
])
def test_a_mismatch_is_refused_by_feature_name(exported, tmp_path, capsys, flags, says):
    folder = tmp_path / "demos"
    err = refused(capsys, [str(exported), "sim_pick_cube", *SIX_AXES, "--demos-dir", str(folder),
                           *flags], folder)
    for text in says:
        assert text in err, err


@pytest.mark.timeout(60)
def test_actions_outside_the_policy_scale_are_refused(exported, tmp_path, capsys):
    dataset = scaled_actions(exported, tmp_path / "loud", 3.0)
    folder = tmp_path / "demos"
    err = refused(capsys, [str(dataset), "sim_pick_cube", *SIX_AXES, "--demos-dir", str(folder)],
                  folder)
    assert "action: values outside [-1, 1]" in err and "episodes 0, 1" in err
    assert "map `action`" in err


@pytest.mark.timeout(60)
def test_a_mapping_file_and_bad_input_are_clear(exported, tmp_path, capsys):
    folder = tmp_path / "demos"
    (tmp_path / "bad.yaml").write_text("stat: observation.state\n")
    err = refused(capsys, [str(exported), "sim_pick_cube", *SIX_AXES, "--map",
                           str(tmp_path / "bad.yaml"), "--demos-dir", str(folder)], folder)
    assert "unknown key(s) ['stat']" in err
    err = refused(capsys, [str(tmp_path / "nowhere"), "sim_pick_cube", *SIX_AXES, "--demos-dir",
                           str(folder)], folder)
    assert "not a LeRobot dataset's info" in err
    # a mapping file renaming what the dataset calls its parts (here, to the same features)
    (tmp_path / "map.yaml").write_text(
        "state: [observation.state]\ncameras: {front: observation.images.front}\n"
        "action: action\nreward: next.reward\nterminated: next.terminated\n")
    assert import_main([str(exported), "sim_pick_cube", *SIX_AXES, "--map",
                        str(tmp_path / "map.yaml"), "--demos-dir", str(folder)]) == 0
    assert len(list(folder.glob("*.npz"))) == 2
    # export: an existing OUT, and a SOURCE that is neither a run nor a demos folder
    assert export_main([str(folder), str(exported), "--task", "sim_pick_cube", *SIX_AXES]) == 2
    assert "exists; name a new folder" in capsys.readouterr().err
    # refused before SOURCE is read: here SOURCE is not even a folder
    assert export_main([str(tmp_path / "nowhere"), str(exported)]) == 2
    assert "exists; name a new folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        export_main([str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert "neither a run folder" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_a_dataset_written_by_lerobot_imports(tmp_path):
    folder = tmp_path / "demos"
    assert import_main([str(FIXTURE), "sim_pick_cube", *SIX_AXES, "--demos-dir", str(folder)]) == 0
    batches, problems = load_demos(folder, task_spec(short_config()))
    assert not problems
    got = sorted(batches.values(), key=lambda b: int(b["episode_id"][0]))
    reader = LeRobotReader(FIXTURE)
    stats = json.loads((FIXTURE / "meta/stats.json").read_text())
    for batch, ref, length in zip(got, reader.episodes, (6, 5), strict=True):
        cols = reader.columns(ref, ["action", "observation.state", "next.reward", "next.done"])
        # LeRobot's convention: one transition per frame, the last one observing itself next
        assert len(batch["actions"]) == length
        np.testing.assert_array_equal(batch["actions"], cols["action"])
        np.testing.assert_array_equal(batch["observations"]["state"], cols["observation.state"])
        np.testing.assert_array_equal(batch["next_observations"]["state"][:-1],
                                      cols["observation.state"][1:])
        np.testing.assert_array_equal(batch["next_observations"]["front"][-1],
                                      batch["observations"]["front"][-1])
        np.testing.assert_array_equal(batch["rewards"], cols["next.reward"])
        # next.done (no next.terminated) terminates
        np.testing.assert_array_equal(batch["masks"] == 0, cols["next.done"])
        np.testing.assert_array_equal(batch["step"], np.arange(length))
    for cam in ("front", "wrist"):  # AV1 frames decoded close to what lerobot measured
        frames = np.concatenate([b["observations"][cam] for b in got]) / 255.0
        want = np.asarray(stats[f"observation.images.{cam}"]["mean"]).ravel()
        np.testing.assert_allclose(frames.mean(axis=(0, 1, 2)), want, atol=0.02)
    reader.close()


def to_v21(exported: Path, out: Path) -> Path:
    """The export in the v2.1 layout: a parquet and an mp4 per episode, jsonl tables."""
    reader = LeRobotReader(exported)
    info = dict(reader.info, codebase_version="v2.1",
                data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
                video_path="videos/chunk-{episode_chunk:03d}/{video_key}/"
                           "episode_{episode_index:06d}.mp4")
    (out / "meta").mkdir(parents=True)
    (out / "meta/info.json").write_text(json.dumps(info))
    rows = []
    table = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    for ref in reader.episodes:
        where = {"episode_chunk": 0, "episode_index": ref.index}
        part = table.filter(pc.equal(table.column("episode_index"), ref.index))
        path = out / info["data_path"].format(**where)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path)
        for key in reader.video_keys:
            frames = reader.frames(ref, key)
            video = VideoEncoder(out / info["video_path"].format(video_key=key, **where), 128,
                                 128, 10)
            video.write(frames)
            video.close()
        rows.append(json.dumps({"episode_index": ref.index, "tasks": ["t"],
                                "length": ref.length}))
    (out / "meta/episodes.jsonl").write_text("\n".join(rows) + "\n")
    reader.close()
    return out


def imported_beside_recorded(dataset, demos, folder):
    """(imported, recorded) episode pairs, in episode order, after importing `dataset` into
    `folder`; their actions are equal."""
    assert import_main([str(dataset), "sim_pick_cube", *SIX_AXES, "--demos-dir", str(folder)]) == 0
    spec = task_spec(short_config())
    got, _ = load_demos(folder, spec)
    want, _ = load_demos(demos, spec)
    pairs = list(zip(sorted(got.values(), key=lambda b: int(b["episode_id"][0])),
                     sorted(want.values(), key=lambda b: int(b["episode_id"][0])), strict=True))
    for g, w in pairs:
        np.testing.assert_array_equal(g["actions"], w["actions"])
    return pairs


@pytest.mark.timeout(60)
def test_the_v21_layout_imports_too(demos, exported, tmp_path):
    dataset = to_v21(exported, tmp_path / "v21")
    for g, w in imported_beside_recorded(dataset, demos, tmp_path / "demos"):
        np.testing.assert_array_equal(g["next_observations"]["state"],
                                      w["next_observations"]["state"])
        assert np.abs(g["observations"]["front"].astype(int)
                      - w["observations"]["front"].astype(int)).mean() < 4.0


@pytest.mark.timeout(60)
def test_image_features_import_like_videos(demos, exported, tmp_path):
    """Cameras stored as PNG `image` features (upstream's use_videos=False) import too."""
    import cv2

    out = tmp_path / "images"
    shutil.copytree(exported / "meta", out / "meta")
    reader = LeRobotReader(exported)
    table = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    info = json.loads((exported / "meta/info.json").read_text())
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for key in reader.video_keys:
        frames = np.concatenate([reader.frames(ref, key) for ref in reader.episodes])
        png = [{"bytes": cv2.imencode(".png", f[..., ::-1])[1].tobytes(), "path": None}
               for f in frames]
        table = table.append_column(key, pa.array(png, image_type))
        info["features"][key] = {"dtype": "image", "shape": [128, 128, 3],
                                 "names": ["height", "width", "channels"]}
    reader.close()
    info["video_path"] = None
    (out / "meta/info.json").write_text(json.dumps(info))
    (out / "data/chunk-000").mkdir(parents=True)
    pq.write_table(table, out / "data/chunk-000/file-000.parquet")
    for g, w in imported_beside_recorded(out, demos, tmp_path / "demos"):
        assert np.abs(g["next_observations"]["wrist"].astype(int)
                      - w["next_observations"]["wrist"].astype(int)).mean() < 3.0
