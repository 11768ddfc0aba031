"""`LeRobotWriter`: one LeRobotDataset v3.0 folder written episode by episode, frames streamed to
the parquet and mp4 files as they come (memory holds one chunk of frames and the episode table).

The folder is built as `OUT.partial` and renamed to OUT once its metadata is written, so an
interrupted export never leaves a folder that looks complete.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serl.datasets import lerobot_format as fmt
from serl.datasets.features import IMAGES, TaskFeatures
from serl.datasets.stats import FeatureStats
from serl.datasets.video import DEFAULT_CRF, VideoEncoder, video_info
from serl.durable import fsync_directory, write_json


class LeRobotWriter:
    """Writes `root` (which must not exist) for one task's transitions: `begin_episode`, `add`
    chunks of frames, `end_episode`, ..., then `close` (or `abort`)."""

    def __init__(self, root: Path, features: TaskFeatures, task: str, crf: int = DEFAULT_CRF,
                 data_file_mb: float = fmt.DATA_FILE_MB, video_file_mb: float = fmt.VIDEO_FILE_MB):
        self.final_root, self.task_features, self.task = Path(root), features, task
        if self.final_root.exists():
            raise FileExistsError(f"{self.final_root} exists; name a new folder")
        self.root = self.final_root.with_name(self.final_root.name + ".partial")
        if self.root.exists():  # an earlier export that was interrupted
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.crf, self.data_file_mb, self.video_file_mb = crf, data_file_mb, video_file_mb
        obs = features.spec.observation_spec
        self.shapes = {cam: obs[cam][0] for cam in features.cameras}
        self.features = features.features(
            {cam: video_info(h, w, features.fps) for cam, (h, w, _) in self.shapes.items()})
        self.schema = fmt.data_schema(self.features)
        self.stats = FeatureStats(IMAGES + cam for cam in features.cameras)
        self.episodes: list[dict[str, Any]] = []
        self.total_frames = 0
        self._data: pq.ParquetWriter | None = None
        self._data_files = 0  # data files opened so far
        self._videos: dict[str, VideoEncoder] = {}
        self._video_files = dict.fromkeys(features.cameras, 0)
        self._episode: dict[str, Any] | None = None

    # -- episodes ----------------------------------------------------------------------------------

    def begin_episode(self) -> None:
        """Start the next episode; files past their size limit are closed first (an episode never
        spans two files)."""
        if self._episode is not None:
            raise RuntimeError("end_episode() the episode in progress first")
        if self._data is not None and self._data_path().stat().st_size / 2**20 >= self.data_file_mb:
            self._data.close()
            self._data, self._data_files = None, self._data_files + 1
        if self._data is None:
            self._data_path().parent.mkdir(parents=True, exist_ok=True)
            self._data = pq.ParquetWriter(self._data_path(), self.schema, compression="snappy")
        for cam, video in list(self._videos.items()):
            if video.megabytes() >= self.video_file_mb:
                video.close()
                del self._videos[cam]
                self._video_files[cam] += 1
        for cam, (h, w, _) in self.shapes.items():
            if cam not in self._videos:
                self._videos[cam] = VideoEncoder(self._video_path(cam), h, w,
                                                 self.task_features.fps, self.crf)
        self._episode = {"from": self.total_frames, "frames": 0,
                         "video_from": {c: v.frames for c, v in self._videos.items()},
                         "stats": FeatureStats(IMAGES + c for c in self.shapes)}

    def add(self, columns: Mapping[str, np.ndarray], frames: Mapping[str, np.ndarray]) -> None:
        """Append frames of the episode in progress: every non-visual feature but LeRobot's own
        indices in `columns`, each camera's uint8 frames in `frames`."""
        ep = self._episode
        if ep is None:
            raise RuntimeError("begin_episode() first")
        n = len(next(iter(columns.values())))
        if any(len(v) != n for v in [*columns.values(), *frames.values()]) or (
                set(frames) != set(self.shapes)):
            raise ValueError(f"a chunk needs {n} rows of every column and of cameras "
                             f"{sorted(self.shapes)}")
        frame_index = np.arange(ep["frames"], ep["frames"] + n)
        full = {**columns, "timestamp": (frame_index / self.task_features.fps).astype(np.float32),
                "frame_index": frame_index, "episode_index": np.full(n, len(self.episodes)),
                "index": np.arange(self.total_frames, self.total_frames + n),
                "task_index": np.zeros(n, np.int64)}
        missing = set(self.schema.names) - set(full)
        if missing:
            raise ValueError(f"columns missing from a chunk: {sorted(missing)}")
        arrays = [fmt.column(full[name], self.features[name]) for name in self.schema.names]
        self._data.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        for cam, video in self._videos.items():
            video.write(frames[cam])
        ep["stats"].add({name: full[name] for name in self.schema.names})
        ep["stats"].add({IMAGES + cam: frames[cam] for cam in frames})
        ep["frames"] += n
        self.total_frames += n

    def end_episode(self) -> int:
        """Close the episode in progress (it must have frames); returns its episode index."""
        ep, self._episode = self._episode, None
        if ep is None or ep["frames"] == 0:
            raise ValueError("an episode needs at least one frame")
        fps, index = self.task_features.fps, len(self.episodes)
        row: dict[str, Any] = {
            "episode_index": index, "tasks": [self.task], "length": ep["frames"],
            "data/chunk_index": fmt.file_position(self._data_files)["chunk_index"],
            "data/file_index": fmt.file_position(self._data_files)["file_index"],
            "dataset_from_index": ep["from"], "dataset_to_index": ep["from"] + ep["frames"]}
        for cam, first in ep["video_from"].items():
            key, position = IMAGES + cam, fmt.file_position(self._video_files[cam])
            row[f"videos/{key}/chunk_index"] = position["chunk_index"]
            row[f"videos/{key}/file_index"] = position["file_index"]
            row[f"videos/{key}/from_timestamp"] = first / fps
            row[f"videos/{key}/to_timestamp"] = (first + ep["frames"]) / fps
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
        for key, stats in ep["stats"].result().items():
            row.update({f"stats/{key}/{name}": value.tolist() for name, value in stats.items()})
        self.episodes.append(row)
        self.stats.merge(ep["stats"])
        return index

    # -- finishing ---------------------------------------------------------------------------------

    def close(self) -> Path:
        """Write the metadata and move the folder to its name; returns it. An export with no
        episode is an error (LeRobot cannot load an empty dataset)."""
        if self._episode is not None:
            raise RuntimeError("end_episode() the episode in progress first")
        self._close_files()
        if not self.episodes:
            shutil.rmtree(self.root)
            raise ValueError("nothing to export: the source holds no transitions")
        fmt.write_parquet(self.root / fmt.EPISODES_PATH.format(**fmt.file_position(0)),
                          pa.Table.from_pylist(self.episodes))
        fmt.write_parquet(self.root / fmt.TASKS_PATH, fmt.tasks_table([self.task]))
        write_json(self.root / fmt.STATS_PATH, fmt.json_ready(self.stats.result()), indent=4)
        write_json(self.root / fmt.INFO_PATH, fmt.info_json(
            self.task_features.fps, self.features, len(self.episodes), self.total_frames),
                   indent=4)
        self.root.rename(self.final_root)
        fsync_directory(self.final_root.parent)
        return self.final_root

    def abort(self) -> None:
        """Stop the encoders and remove the partial folder."""
        self._close_files()
        shutil.rmtree(self.root, ignore_errors=True)

    def _close_files(self) -> None:
        if self._data is not None:
            self._data.close()
            self._data = None
        for video in self._videos.values():
            video.close()
        self._videos = {}

    def _data_path(self) -> Path:
        return self.root / fmt.DATA_PATH.format(**fmt.file_position(self._data_files))

    def _video_path(self, cam: str) -> Path:
        return self.root / fmt.VIDEO_PATH.format(video_key=IMAGES + cam,
                                                 **fmt.file_position(self._video_files[cam]))
