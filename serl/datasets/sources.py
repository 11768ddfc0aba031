"""What `serl export` reads: the episodes of a demos folder (one `.npz` file each) or of a run's
replay buffers (`RUN/buffers/online`, `RUN/buffers/demo`), each as chunks of transitions in order.

A buffer's rows interleave the episodes of several actors, and its demo buffer holds intervention
steps cut out of online episodes; an episode here is a maximal run of one source's transitions
whose steps follow one another and whose frames link (each observation is the one before's next
observation). The scan reads only the rows' provenance; frames are read chunk by chunk on export.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serl.data.demos import load_episode, spec_difference
from serl.data.schema import Batch, TransitionSpec, batch_len, take

CHUNK = 256  # transitions read at a time
SCAN = 8192  # rows whose provenance is read at a time
BUFFERS = ("online", "demo")


@dataclass(frozen=True)
class SourceEpisode:
    """One episode to export: `chunks()` yields its transitions in order (batches of the spec)."""

    name: str  # where it comes from, for messages
    length: int  # transitions
    demo: bool  # from a demos folder or a demo buffer
    chunks: Callable[[], Iterator[Batch]]


def check_spec(stored: TransitionSpec, expected: TransitionSpec, where: str) -> None:
    """ValueError naming what differs when a source's spec is not the config's."""
    if stored != expected:
        ours = json.loads(json.dumps(expected.to_json(), sort_keys=True))
        raise ValueError(f"{where} holds transitions of another spec than its config's "
                         f"({spec_difference(stored.to_json(), ours)})")


def demo_episodes(folder: Path, spec: TransitionSpec,
                  warn: Callable[[str], None]) -> list[SourceEpisode]:
    """The episode files of a demos folder, by name; an unreadable or foreign file is skipped with
    a warning, a folder none of whose files loads is a ValueError."""
    paths, problems = sorted(Path(folder).glob("*.npz")), []
    episodes = []
    for path in paths:
        try:
            length = batch_len(load_episode(path, spec))
        except ValueError as err:
            problems.append(str(err))
            continue

        def chunks(path=path) -> Iterator[Batch]:
            batch = load_episode(path, spec)
            for start in range(0, batch_len(batch), CHUNK):
                yield take(batch, slice(start, start + CHUNK))

        episodes.append(SourceEpisode(path.name, length, True, chunks))
    if problems and not episodes:
        raise ValueError(f"none of the {len(problems)} episode files in {folder} loads for this "
                         f"config, e.g. {problems[0]}")
    for problem in problems:
        warn(f"skipped {problem}")
    return episodes


def open_buffer(folder: Path):
    """A run's buffer folder opened with the layout it was written with (nothing is appended)."""
    from serl.data.storage import ReplayStorage

    stored = json.loads((folder / "storage.json").read_text())
    features = {k: (tuple(s), t) for k, (s, t) in stored.get("features", {}).items()}

    def no_features(_inputs):
        raise RuntimeError("an export never appends")

    try:
        return ReplayStorage(folder, TransitionSpec.from_json(stored["spec"]), capacity=1 << 62,
                             chunk_size=int(stored["chunk_size"]), features=features or None,
                             feature_fn=no_features if features else None)
    except RuntimeError as err:  # the folder lock: the learner has it open
        raise ValueError(f"{err}: stop the run's learner before exporting its buffers") from None


def segments(storage, first: int, end: int) -> list[np.ndarray]:
    """Row indices of each episode in [first, end), ordered by their first row."""
    open_: dict[tuple[int, int], tuple[list[int], int, int, bool]] = {}
    done: list[list[int]] = []
    for start in range(first, end, SCAN):
        _, rows = storage.provenance(np.arange(start, min(start + SCAN, end)))
        keys = zip(rows["actor"].tolist(), rows["episode_id"].tolist(), strict=True)
        for i, key, step, obs, nxt, over in zip(
                range(start, start + len(rows)), keys, rows["step"].tolist(),
                rows["obs_slot"].tolist(), rows["next_slot"].tolist(), rows["dones"].tolist(),
                strict=True):
            seg = open_.get(key)
            if seg is not None and not seg[3] and seg[1] + 1 == step and seg[2] == obs:
                seg[0].append(i)
                open_[key] = (seg[0], step, nxt, over)
                continue
            if seg is not None:
                done.append(seg[0])
            open_[key] = ([i], step, nxt, over)
    done += [seg[0] for seg in open_.values()]
    return [np.asarray(s, np.int64) for s in sorted(done, key=lambda s: s[0])]


def buffer_episodes(storage, spec: TransitionSpec, demo: bool, name: str) -> list[SourceEpisode]:
    """The episodes of an open buffer (its sampling window), each read chunk by chunk."""
    check_spec(storage.spec, spec, name)
    obs_keys = set(spec.observation_spec)

    def chunks(index: np.ndarray) -> Iterator[Batch]:
        for start in range(0, len(index), CHUNK):
            batch = storage.get(index[start:start + CHUNK])
            for top in ("observations", "next_observations"):  # derived features stay home
                batch[top] = {k: v for k, v in batch[top].items() if k in obs_keys}
            yield batch

    first = len(storage) - storage.size
    return [SourceEpisode(f"{name} rows {idx[0]}..{idx[-1]}", len(idx), demo,
                          lambda idx=idx: chunks(idx)) for idx in segments(storage, first,
                                                                           len(storage))]


def run_buffers(run: Path, which: str) -> list[Path]:
    """The buffer folders of a run that `which` (online, demo or both) names; a missing one is a
    ValueError."""
    names = BUFFERS if which == "both" else (which,)
    if which not in (*BUFFERS, "both"):
        raise ValueError(f"buffers must be online, demo or both, got {which!r}")
    folders = [run / "buffers" / n for n in names]
    missing = [str(f) for f in folders if not (f / "storage.json").is_file()]
    if missing:
        raise ValueError(f"{run} has no buffer at {', '.join(missing)}")
    return folders
