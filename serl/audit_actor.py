"""One actor's part of `serl.audit`: its untrimmed `produced.log` against the rows the learner's
buffers hold, the provenance of those rows in sequence order, and its spool's weights.log and acked
watermark.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serl.data import ReplayStorage, TransitionSpec
from serl.transport.produced_log import read_produced_log


@dataclass
class ActorAudit:
    """One actor's figures; every count but `produced`, `stored`, `interventions` should be 0."""

    actor_id: str
    produced: int = 0  # sequences in produced.log
    stored: int = 0  # rows of this actor in the online buffer
    lost: int = 0  # produced, not in the online buffer
    duplicated: int = 0  # extra copies in the online buffer
    unexpected: int = 0  # in the online buffer, never produced
    # produced.log ranges that started at or below an earlier sequence
    sequence_regressions: int = 0
    sequence_gaps: int = 0  # sequences skipped between produced.log ranges
    interventions: int = 0  # intervention steps in the online buffer
    demo_missing: int = 0  # intervention steps not in the demo buffer
    demo_duplicated: int = 0  # extra copies in the demo buffer
    demo_unexpected: int = 0  # demo rows of this actor that are not intervention steps
    # |produced.log's intervention count - stored|, when the log knows it
    intervention_count_mismatch: int = 0
    episode_regressions: int = 0  # episode id went down, or an id was reused after another
    # within an episode, step did not go up by one; a new episode did not start at 0
    step_breaks: int = 0
    episode_id_reuse_risk: int = 0  # highest stored episode id not below the actor's saved next id
    # weights version (incarnation, step) went down between consecutive transitions
    version_regressions: int = 0
    # learner incarnations whose weights acted
    incarnations_seen: list[int] = field(default_factory=list)
    # ... whose weights arrived (spool/weights.log)
    incarnations_received: list[int] = field(default_factory=list)
    unacknowledged: int = 0  # produced but never acknowledged by the learner (spool not drained)


def _open_storage(folder: Path) -> ReplayStorage:
    """Open a buffer folder with the layout it was written with (feature records are never computed
    here)."""
    stored = json.loads((folder / "storage.json").read_text())
    features = {k: (tuple(s), t) for k, (s, t) in stored.get("features", {}).items()}

    def no_features(_inputs):
        raise RuntimeError("the audit never appends")

    return ReplayStorage(folder, TransitionSpec.from_json(stored["spec"]), capacity=1 << 62,
                         chunk_size=int(stored["chunk_size"]), features=features or None,
                         feature_fn=no_features if features else None)


def buffer_rows(folder: Path) -> tuple[list[str], np.ndarray]:
    """(actor ids, row records) of every transition still stored in a buffer folder (none if it does
    not exist)."""
    if not (folder / "storage.json").exists():
        return [], np.empty(0, [("actor", np.int32), ("sequence", np.int64)])
    with _open_storage(folder) as storage:
        first = len(storage) - storage.size
        return storage.provenance(np.arange(first, len(storage)))


def _of_actor(ids: list[str], rows: np.ndarray, actor_id: str) -> np.ndarray:
    return rows[rows["actor"] == ids.index(actor_id)] if actor_id in ids else rows[:0]


def _duplicates(values) -> int:
    return sum(c - 1 for c in Counter(values).values())


Rows = tuple[list[str], np.ndarray]  # (actor ids, row records) of a buffer


def audit_actor(actor_dir: Path, online: Rows, demo: Rows) -> ActorAudit:
    """Compare one actor's produced.log and state with the buffers' rows."""
    a = ActorAudit(actor_dir.name)
    ranges = read_produced_log(actor_dir / "spool" / "produced.log")
    previous = -1
    for r in ranges:
        a.sequence_regressions += r.first <= previous
        a.sequence_gaps += max(0, r.first - previous - 1)
        previous = max(previous, r.last)
    produced = [s for r in ranges for s in range(r.first, r.last + 1)]
    rows = _of_actor(*online, a.actor_id)
    rows = rows[np.argsort(rows["sequence"], kind="stable")]
    stored = rows["sequence"].tolist()
    a.produced, a.stored, a.duplicated = len(produced), len(stored), _duplicates(stored)
    a.lost, a.unexpected = len(set(produced) - set(stored)), len(set(stored) - set(produced))
    _check_provenance(a, rows)
    intervened = set(rows["sequence"][rows["intervened"]].tolist())
    a.interventions = len(intervened)
    demo_seqs = _of_actor(*demo, a.actor_id)["sequence"].tolist()
    a.demo_duplicated = _duplicates(demo_seqs)
    a.demo_missing, a.demo_unexpected = len(intervened
                                            - set(demo_seqs)), len(set(demo_seqs) - intervened)
    if ranges and all(r.interventions >= 0 for r in ranges):
        a.intervention_count_mismatch = abs(sum(r.interventions for r in ranges) - len(intervened))
    state = actor_dir.parent / f"{a.actor_id}.json"
    if state.exists() and len(rows):
        next_id = json.loads(state.read_text())["episodes"]
        a.episode_id_reuse_risk = int(int(rows["episode_id"].max()) >= next_id)
    a.incarnations_received = _received(actor_dir / "spool" / "weights.log")
    acked_file = actor_dir / "spool" / "acked"
    acked = int(acked_file.read_text().split()[0]) if acked_file.exists() else -1
    a.unacknowledged = max(0, previous - acked)
    return a


def _received(weights_log: Path) -> list[int]:
    """Incarnations an actor's transport recorded receiving weights from (a torn last line is
    skipped)."""
    if not weights_log.exists():
        return []
    lines = weights_log.read_text().splitlines()
    return sorted({int(line.split()[0]) for line in lines if len(line.split()) == 3})


def _check_provenance(a: ActorAudit, rows: np.ndarray) -> None:
    """Episode ids, steps and weights versions of one actor's rows in sequence order."""
    if not len(rows):
        return
    episodes, steps = rows["episode_id"], rows["step"]
    same = episodes[1:] == episodes[:-1]
    a.episode_regressions = int(np.sum(episodes[1:] < episodes[:-1]))
    # an id that came back later
    a.episode_regressions += _duplicates(episodes[np.r_[True, ~same]].tolist())
    a.step_breaks = int(np.sum(same & (steps[1:] != steps[:-1] + 1))
                        + np.sum(~same & (steps[1:] != 0)))
    a.step_breaks += int(steps[0] != 0 and rows["sequence"][0] == 0)
    version = rows["policy_version"]
    inc, step = version[:, 0], version[:, 1]
    a.version_regressions = int(np.sum((inc[1:] < inc[:-1])
                                       | ((inc[1:] == inc[:-1]) & (step[1:] < step[:-1]))))
    a.incarnations_seen = sorted({int(i) for i in inc if i >= 0})
