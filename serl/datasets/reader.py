"""`LeRobotReader`: a LeRobotDataset folder read episode by episode (v3.0; v2.1 and v2.0 too,
whose layout is one parquet and one mp4 per episode). Only JSON, parquet, mp4 and PNG/JPEG are
read; nothing is unpickled.

Memory holds one data file's columns (upstream caps a file at 100 MB) and one episode's frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serl.datasets import lerobot_format as fmt
from serl.datasets.video import FrameReader

VERSIONS = ("v3.0", "v2.1", "v2.0")


@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode's rows and frames are."""

    index: int  # episode_index
    length: int  # frames
    data_file: Path
    videos: dict[str, tuple[Path, int]]  # video feature -> (file, first frame in it)


class LeRobotReader:
    """A dataset's info (`fps`, `features`, `version`), its episodes in order, and their columns
    and frames; ValueError naming the file for anything malformed."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / fmt.INFO_PATH
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{info_path}: not a LeRobot dataset's info ({err})") from None
        self.version = str(self.info.get("codebase_version"))
        if self.version not in VERSIONS:
            raise ValueError(f"{info_path}: codebase_version {self.version!r}; this reader reads "
                             f"{', '.join(VERSIONS)}")
        try:
            self.fps = float(self.info["fps"])
            self.features: dict[str, dict[str, Any]] = dict(self.info["features"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{info_path}: no valid fps and features ({err})") from None
        self.episodes = self._v3_episodes() if self.version == "v3.0" else self._v2_episodes()
        self._table: tuple[Path, pa.Table] | None = None
        self._videos: dict[str, FrameReader] = {}

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") == "video"]

    def _v3_episodes(self) -> list[EpisodeRef]:
        files = sorted((self.root / "meta" / "episodes").glob("*/*.parquet"))
        if not files:
            raise ValueError(f"{self.root}/meta/episodes: no episode table")
        keys = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        for key in self.video_keys:
            keys += [f"videos/{key}/chunk_index", f"videos/{key}/file_index",
                     f"videos/{key}/from_timestamp"]
        rows = []
        for path in files:
            table = pq.read_table(path)
            missing = sorted(set(keys) - set(table.column_names))
            if missing:
                raise ValueError(f"{path}: the episode table lacks {missing}")
            rows += table.select(keys).to_pylist()
        out = []
        for row in sorted(rows, key=lambda r: r["episode_index"]):
            data = self.root / self.info["data_path"].format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
            videos = {key: (self.root / self.info["video_path"].format(
                video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                file_index=row[f"videos/{key}/file_index"]),
                round(row[f"videos/{key}/from_timestamp"] * self.fps))
                for key in self.video_keys}
            out.append(EpisodeRef(int(row["episode_index"]), int(row["length"]), data, videos))
        return out

    def _v2_episodes(self) -> list[EpisodeRef]:
        path = self.root / "meta" / "episodes.jsonl"
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable episode list ({err})") from None
        size, out = int(self.info.get("chunks_size", 1000)), []
        for row in sorted(rows, key=lambda r: r["episode_index"]):
            index = int(row["episode_index"])
            where = {"episode_chunk": index // size, "episode_index": index}
            data = self.root / self.info["data_path"].format(**where)
            videos = {key: (self.root / self.info["video_path"].format(video_key=key, **where), 0)
                      for key in self.video_keys}
            out.append(EpisodeRef(index, int(row["length"]), data, videos))
        return out

    # -- reading -----------------------------------------------------------------------------------

    def column_everywhere(self, key: str) -> Iterator[tuple[int, np.ndarray]]:
        """(episode index, values) of one column, file by file (a cheap pass over the data)."""
        for path in sorted({e.data_file for e in self.episodes}):
            table = self._read(path, [key, "episode_index"])
            episode = np.asarray(table.column("episode_index").to_numpy())
            values = to_numpy(table.column(key), self.features[key])
            for index in np.unique(episode):
                yield int(index), values[episode == index]

    def columns(self, episode: EpisodeRef, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The episode's rows of non-visual columns, in frame order."""
        part = self._rows(episode)
        return {k: to_numpy(part.column(k), self.features[k]) for k in keys}

    def frames(self, episode: EpisodeRef, key: str) -> np.ndarray:
        """The episode's frames of a camera feature (video or image), uint8 (T, H, W, 3)."""
        if self.features[key].get("dtype") == "image":
            images = self._rows(episode).column(key).combine_chunks()
            return decode_images([images[i]["bytes"].as_py() for i in range(len(images))], key)
        path, first = episode.videos[key]
        reader = self._videos.get(key)
        if reader is None or reader.path != path:
            if reader is not None:
                reader.close()
            reader = self._videos[key] = FrameReader(path)
        return reader.read(first, episode.length)

    def _rows(self, episode: EpisodeRef) -> pa.Table:
        """The episode's rows of its data file (kept while episodes of that file are read)."""
        if self._table is None or self._table[0] != episode.data_file:
            wanted = [k for k, f in self.features.items() if f.get("dtype") != "video"]
            self._table = (episode.data_file, self._read(episode.data_file, wanted))
        table = self._table[1]
        rows = np.flatnonzero(table.column("episode_index").to_numpy() == episode.index)
        order = np.argsort(table.column("frame_index").to_numpy()[rows], kind="stable")
        part = table.take(pa.array(rows[order]))
        if part.num_rows != episode.length:
            raise ValueError(f"{episode.data_file}: episode {episode.index} has {part.num_rows} "
                             f"rows, the episode table says {episode.length}")
        return part

    def _read(self, path: Path, keys: Sequence[str]) -> pa.Table:
        try:
            table = pq.read_table(path, columns=list(keys))
        except (OSError, pa.ArrowInvalid, KeyError) as err:
            raise ValueError(f"{path}: not readable with columns {list(keys)} ({err})") from None
        return table

    def close(self) -> None:
        for reader in self._videos.values():
            reader.close()
        self._videos, self._table = {}, None


def to_numpy(values: pa.ChunkedArray, feature: dict[str, Any]) -> np.ndarray:
    """A parquet column as numpy: (n,) for a scalar feature, (n, *shape) for a list one."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    n = len(values)
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type) or (
            pa.types.is_large_list(values.type)):
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False)
    shape = tuple(feature.get("shape", ()))
    if shape in ((), (1,)):
        return flat.reshape(n) if len(flat) == n else flat.reshape(n, -1)
    return flat.reshape(n, *shape) if flat.size == n * int(np.prod(shape)) else flat.reshape(n, -1)


def decode_images(encoded: list[bytes], key: str) -> np.ndarray:
    """PNG or JPEG images (an `image` feature's bytes) as uint8 RGB (T, H, W, 3)."""
    import cv2

    frames = []
    for i, data in enumerate(encoded):
        image = cv2.imdecode(np.frombuffer(data or b"", np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{key}: frame {i} is not a PNG or JPEG image")
        frames.append(image[..., ::-1])
    return np.stack(frames)
