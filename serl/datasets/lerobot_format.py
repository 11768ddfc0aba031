"""The LeRobotDataset v3.0 folder layout as upstream LeRobot writes and reads it
(`lerobot/datasets/utils.py`, `lerobot_dataset.py`; the commit checked is in docs/datasets.md):

    meta/info.json                       codebase_version, fps, features, path templates, totals
    meta/stats.json                      {feature: {min, max, mean, std, count}}
    meta/tasks.parquet                   task strings (the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: length, data and video file
                                         indices, frame ranges, per-camera from/to timestamps, stats
    data/chunk-XXX/file-XXX.parquet      one row per frame, several episodes per file
    videos/<camera key>/chunk-XXX/file-XXX.mp4  one stream per camera, episodes one after another

A feature is {"dtype", "shape", "names"}; shape (1,) is a scalar column, (n,) a fixed-size list,
dtype "video" lives in the mp4 files only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder (upstream DEFAULT_CHUNK_SIZE)
DATA_FILE_MB = 100  # a data file is closed past this size (upstream DEFAULT_DATA_FILE_SIZE_IN_MB)
VIDEO_FILE_MB = 200  # ... a video file (upstream DEFAULT_VIDEO_FILE_SIZE_IN_MB)
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH, STATS_PATH, TASKS_PATH = "meta/info.json", "meta/stats.json", "meta/tasks.parquet"
# LeRobot's own columns, on every frame
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
VISUAL = ("video", "image")
# the pandas index column pandas writes for an unnamed index (tasks.parquet's task strings)
PANDAS_INDEX = "__index_level_0__"


def file_position(n: int, chunks_size: int = CHUNKS_SIZE) -> dict[str, int]:
    """The chunk and file index of the n-th file of a kind (upstream's update_chunk_file_indices,
    counted from 0)."""
    return {"chunk_index": n // chunks_size, "file_index": n % chunks_size}


def arrow_type(feature: Mapping[str, Any]) -> pa.DataType:
    """The parquet column type of a non-visual feature: a scalar for shape (1,), a fixed-size list
    for (n,) (what the `datasets` library makes of Value and Sequence(length=n))."""
    scalar = pa.from_numpy_dtype(np.dtype(feature["dtype"]))
    shape = tuple(feature["shape"])
    if shape == (1,):
        return scalar
    if len(shape) == 1:
        return pa.list_(scalar, int(shape[0]))
    raise ValueError(f"only scalar and vector features are written, got shape {shape}")


def data_schema(features: Mapping[str, Mapping[str, Any]]) -> pa.Schema:
    """The data files' schema: every feature but the visual ones, in the features' order."""
    return pa.schema([(k, arrow_type(f)) for k, f in features.items() if f["dtype"] not in VISUAL])


def column(values: np.ndarray, feature: Mapping[str, Any]) -> pa.Array:
    """A numpy column (one row per frame) as the arrow array of `feature`."""
    kind = arrow_type(feature)
    values = np.ascontiguousarray(values, dtype=np.dtype(feature["dtype"]))
    if isinstance(kind, pa.FixedSizeListType):
        flat = pa.array(values.reshape(-1), type=kind.value_type)
        return pa.FixedSizeListArray.from_arrays(flat, kind.list_size)
    return pa.array(values.reshape(len(values)), type=kind)


def info_json(fps: float, features: Mapping[str, Any], total_episodes: int, total_frames: int,
              robot_type: str | None = None) -> dict[str, Any]:
    """meta/info.json (upstream create_empty_dataset_info, filled in)."""
    has_video = any(f["dtype"] == "video" for f in features.values())
    return {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
        "total_episodes": int(total_episodes), "total_frames": int(total_frames),
        "total_tasks": 1, "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": VIDEO_FILE_MB,
        "fps": int(fps) if float(fps).is_integer() else float(fps),
        "splits": {"train": f"0:{int(total_episodes)}"}, "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None, "features": dict(features),
    }


def tasks_table(tasks: Sequence[str]) -> pa.Table:
    """tasks.parquet as pandas writes `DataFrame({"task_index": ...}, index=tasks)`: upstream reads
    it with pandas and looks tasks up by the index, so the pandas metadata says which column it
    is."""
    pandas = {
        "index_columns": [PANDAS_INDEX],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": None, "field_name": PANDAS_INDEX, "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3",
    }
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      PANDAS_INDEX: pa.array(list(tasks), pa.string())})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas).encode()})


def read_tasks(path: Path) -> dict[int, str]:
    """task_index -> task of a v3.0 tasks.parquet (the task strings as pandas' index or a `task`
    column)."""
    table = pq.read_table(path)
    names = [n for n in (PANDAS_INDEX, "task") if n in table.column_names]
    if not names or "task_index" not in table.column_names:
        raise ValueError(f"{path}: expected columns task_index and task (or a pandas index), got "
                         f"{table.column_names}")
    return dict(zip(table.column("task_index").to_pylist(), table.column(names[0]).to_pylist(),
                    strict=True))


def write_parquet(path: Path, table: pa.Table) -> Path:
    """One parquet file (snappy, as upstream), its folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")
    return path


def json_ready(value: Any) -> Any:
    """numpy values as JSON lists and numbers."""
    if isinstance(value, Mapping):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value
