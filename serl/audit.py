"""Audit a run folder after the fact: did every transition the actors produced reach the learner's buffers exactly
once, did counters and weight versions only move forward, and did the run end cleanly?

    python -m serl.audit runs/NAME [--steps N] [--json]

It compares each actor's untrimmed `produced.log` with the online buffer (every produced transition once) and the
demo buffer (every intervention step once more), reads the provenance stored with each transition (episode id, step,
weights version) in sequence order, the learner's `resumes.jsonl` (one line per restart, with the updates it
redid) and each actor's `weights.log` (the first weights of each learner incarnation it received). Run it on a
stopped run: opening the buffers takes their folder locks. Exit status 0 when nothing is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from serl.data import ReplayStorage, TransitionSpec
from serl.run_progress import LearnerProgress
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
    sequence_regressions: int = 0  # produced.log ranges that started at or below an earlier sequence
    sequence_gaps: int = 0  # sequences skipped between produced.log ranges
    interventions: int = 0  # intervention steps in the online buffer
    demo_missing: int = 0  # intervention steps not in the demo buffer
    demo_duplicated: int = 0  # extra copies in the demo buffer
    demo_unexpected: int = 0  # demo rows of this actor that are not intervention steps
    intervention_count_mismatch: int = 0  # |produced.log's intervention count - stored|, when the log knows it
    episode_regressions: int = 0  # episode id went down, or an id was reused after another
    step_breaks: int = 0  # within an episode, step did not go up by one; a new episode did not start at 0
    episode_id_reuse_risk: int = 0  # highest stored episode id not below the actor's saved next id
    version_regressions: int = 0  # weights version (incarnation, step) went down between consecutive transitions
    incarnations_seen: list[int] = field(default_factory=list)  # learner incarnations whose weights acted
    incarnations_received: list[int] = field(default_factory=list)  # ... whose weights arrived (spool/weights.log)
    unacknowledged: int = 0  # produced but never acknowledged by the learner (spool not drained)


@dataclass
class AuditReport:
    run_dir: str
    actors: list[ActorAudit]
    incarnations: list[int]  # every learner incarnation that started (0 and one per resume)
    restarts: int  # learner restarts (resumes.jsonl lines)
    redone_updates: int  # updates redone after restarts, summed
    unseen_incarnations: list[int]  # incarnations whose weights no actor received or acted with
    final_updates: int | None  # the learner's update counter at the end
    final_checkpoint: int | None  # the newest checkpoint's update
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def figures(self) -> dict:
        """Totals over actors, for one JSON line."""
        total = lambda name: sum(getattr(a, name) for a in self.actors)  # noqa: E731
        return {"produced": total("produced"), "stored": total("stored"), "lost": total("lost"),
                "duplicated": total("duplicated"), "interventions": total("interventions"),
                "demo_missing": total("demo_missing"), "demo_duplicated": total("demo_duplicated"),
                "learner_restarts": self.restarts, "redone_updates": self.redone_updates,
                "final_updates": self.final_updates, "ok": self.ok, "problems": len(self.problems)}


def _open_storage(folder: Path) -> ReplayStorage:
    """Open a buffer folder with the layout it was written with (feature records are never computed here)."""
    stored = json.loads((folder / "storage.json").read_text())
    features = {k: (tuple(s), t) for k, (s, t) in stored.get("features", {}).items()}

    def no_features(_inputs):
        raise RuntimeError("the audit never appends")

    return ReplayStorage(folder, TransitionSpec.from_json(stored["spec"]), capacity=1 << 62,
                         chunk_size=int(stored["chunk_size"]), features=features or None,
                         feature_fn=no_features if features else None)


def _rows(folder: Path) -> tuple[list[str], np.ndarray]:
    """(actor ids, row records) of every transition still stored in a buffer folder (none if it does not exist)."""
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
    a.demo_missing, a.demo_unexpected = len(intervened - set(demo_seqs)), len(set(demo_seqs) - intervened)
    if ranges and all(r.interventions >= 0 for r in ranges):
        a.intervention_count_mismatch = abs(sum(r.interventions for r in ranges) - len(intervened))
    state = actor_dir.parent / f"{a.actor_id}.json"
    if state.exists() and len(rows):
        a.episode_id_reuse_risk = int(int(rows["episode_id"].max()) >= json.loads(state.read_text())["episodes"])
    a.incarnations_received = _received(actor_dir / "spool" / "weights.log")
    acked_file = actor_dir / "spool" / "acked"
    acked = int(acked_file.read_text().split()[0]) if acked_file.exists() else -1
    a.unacknowledged = max(0, previous - acked)
    return a


def _received(weights_log: Path) -> list[int]:
    """Incarnations an actor's transport recorded receiving weights from (a torn last line is skipped)."""
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
    a.episode_regressions += _duplicates(episodes[np.r_[True, ~same]].tolist())  # an id that came back later
    a.step_breaks = int(np.sum(same & (steps[1:] != steps[:-1] + 1)) + np.sum(~same & (steps[1:] != 0)))
    a.step_breaks += int(steps[0] != 0 and rows["sequence"][0] == 0)
    version = rows["policy_version"]
    inc, step = version[:, 0], version[:, 1]
    a.version_regressions = int(np.sum((inc[1:] < inc[:-1]) | ((inc[1:] == inc[:-1]) & (step[1:] < step[:-1]))))
    a.incarnations_seen = sorted({int(i) for i in inc if i >= 0})


def audit_run(run_dir: str | Path, expected_steps: int | None = None) -> AuditReport:
    """Audit a stopped run folder; `expected_steps`: each actor's env-step budget, to check the run reached it."""
    run_dir = Path(run_dir)
    online, demo = _rows(run_dir / "buffers" / "online"), _rows(run_dir / "buffers" / "demo")
    actor_dirs = sorted(p for p in (run_dir / "actor").glob("*") if (p / "spool" / "produced.log").exists())
    actors = [audit_actor(d, online, demo) for d in actor_dirs]
    progress_files = LearnerProgress(run_dir)
    resumes = progress_files.resumes()
    incarnations = sorted({0, *(int(r["incarnation"]) for r in resumes)})
    seen = {i for a in actors for i in (*a.incarnations_seen, *a.incarnations_received)}
    progress = progress_files.read()
    steps = [int(p.name) for p in (run_dir / "checkpoints").glob("*") if p.name.isdigit()]
    report = AuditReport(str(run_dir), actors, incarnations, len(resumes),
                         sum(int(r["redone_updates"]) for r in resumes), sorted(set(incarnations) - seen),
                         progress.get("updates"), max(steps, default=None), [])
    report.problems = _problems(report, expected_steps)
    return report


def _problems(report: AuditReport, expected_steps: int | None) -> list[str]:
    out = [] if report.actors else ["no actor produced.log found"]
    for a in report.actors:
        for name, value in asdict(a).items():
            if name not in ("actor_id", "produced", "stored", "interventions", "incarnations_seen",
                            "incarnations_received") and value:
                out.append(f"{a.actor_id}: {name} = {value}")
        if expected_steps is not None and a.produced < expected_steps:
            out.append(f"{a.actor_id}: produced {a.produced} of its {expected_steps} env steps")
    if report.unseen_incarnations:
        out.append(f"weights of learner incarnations {report.unseen_incarnations} never reached an actor")
    if report.final_checkpoint is None or report.final_updates != report.final_checkpoint:
        out.append(f"the learner did not end with a checkpoint of its last update (progress "
                   f"{report.final_updates}, newest checkpoint {report.final_checkpoint})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serl.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the run folder, e.g. runs/sim_pick_cube_state")
    parser.add_argument("--steps", type=int, default=None, help="each actor's env-step budget (checks it was met)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)
    report = audit_run(args.run_dir, args.steps)
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}))
    else:
        for a in report.actors:
            print(f"{a.actor_id}: produced {a.produced}, stored {a.stored} (lost {a.lost}, duplicated "
                  f"{a.duplicated}), interventions {a.interventions} (demo missing {a.demo_missing}, duplicated "
                  f"{a.demo_duplicated}), weights of incarnations {a.incarnations_received} received, "
                  f"{a.incarnations_seen} acted with")
        print(f"learner: {report.restarts} restarts, {report.redone_updates} updates redone, ended at update "
              f"{report.final_updates} (checkpoint {report.final_checkpoint})")
        print("\n".join(f"PROBLEM {p}" for p in report.problems) or "OK: nothing lost, duplicated or reordered")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
