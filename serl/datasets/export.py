"""`export_lerobot`: a demos folder or a run's buffers as one LeRobotDataset v3.0 folder, streamed
(one chunk of transitions in memory), with a progress line every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from serl.datasets.features import TaskFeatures
from serl.datasets.lerobot_format import DATA_FILE_MB, VIDEO_FILE_MB
from serl.datasets.sources import SourceEpisode, buffer_episodes, demo_episodes, open_buffer
from serl.datasets.video import DEFAULT_CRF
from serl.datasets.writer import LeRobotWriter

PROGRESS_EVERY_S = 2.0


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    root: Path  # the dataset folder
    episodes: int  # LeRobot episodes
    transitions: int  # transitions exported (frames = transitions + episodes)
    seconds: float


class Progress:
    """A line now and then: transitions done of the total, rate, time left."""

    def __init__(self, total: int, out: Callable[[str], None]):
        self.total, self.out, self.done, self.episodes = total, out, 0, 0
        self.start = self.last = time.monotonic()

    def step(self, n: int, episode_done: bool = False, force: bool = False) -> None:
        self.done += n
        self.episodes += episode_done
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else 0.0
            self.out(f"exported {self.done:,}/{self.total:,} transitions | {self.episodes} "
                     f"episodes | {rate:,.0f}/s | {left:,.0f} s left")


def export_episodes(episodes: Sequence[SourceEpisode], out: Path, features: TaskFeatures,
                    task: str, crf: int = DEFAULT_CRF, progress: Callable[[str], None] = print,
                    file_mb: tuple[float, float] = (DATA_FILE_MB, VIDEO_FILE_MB)) -> ExportSummary:
    """Write `episodes` (each T transitions, then its final observation) as a dataset at `out`;
    data and video files are closed past `file_mb` (MiB) between episodes."""
    writer = LeRobotWriter(out, features, task, crf, *file_mb)
    cams = features.cameras
    meter = Progress(sum(e.length for e in episodes), progress)
    try:
        for episode in episodes:
            if episode.length == 0:
                continue
            writer.begin_episode()
            last = None
            for batch in episode.chunks():
                columns = features.columns(batch, episode.demo)
                writer.add(columns, {c: batch["observations"][c] for c in cams})
                last = (columns, batch["next_observations"])
                meter.step(len(batch["rewards"]))
            columns, next_obs = last
            writer.add(features.final_columns(columns, next_obs),
                       {c: next_obs[c][-1:] for c in cams})
            writer.end_episode()
            meter.step(0, episode_done=True)
        root = writer.close()
    except BaseException:
        writer.abort()
        raise
    meter.step(0, force=True)
    return ExportSummary(root, len(writer.episodes), meter.done, time.monotonic() - meter.start)


def export_demos(folder: Path, out: Path, config, task: str, crf: int = DEFAULT_CRF,
                 progress: Callable[[str], None] = print) -> ExportSummary:
    """A demos folder (episode files recorded for `config`) as a dataset at `out`."""
    features = TaskFeatures.of(config)
    episodes = demo_episodes(folder, features.spec, lambda line: progress(f"warning: {line}"))
    return export_episodes(episodes, out, features, task, crf, progress)


def export_buffers(folders: Sequence[Path], out: Path, config, task: str,
                   crf: int = DEFAULT_CRF,
                   progress: Callable[[str], None] = print) -> ExportSummary:
    """Buffer folders of a run of `config` (`RUN/buffers/online`, `.../demo`) as one dataset at
    `out`: each buffer's episodes in the order their first transition was stored; frames from a
    demo buffer are marked `serl.demo`."""
    features = TaskFeatures.of(config)
    with ExitStack() as stack:
        episodes: list[SourceEpisode] = []
        for folder in folders:
            storage = stack.enter_context(open_buffer(folder))
            episodes += buffer_episodes(storage, features.spec, folder.name == "demo",
                                        str(folder))
        return export_episodes(episodes, out, features, task, crf, progress)
