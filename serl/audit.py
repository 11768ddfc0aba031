"""Audit a run folder after the fact: did every transition the actors produced reach the learner's
buffers exactly once, did counters and weight versions only move forward, and did the run end
cleanly?

    python -m serl.audit runs/NAME [--steps N] [--json]

It compares each actor's untrimmed `produced.log` with the online buffer (every produced transition
once) and the demo buffer (every intervention step once more), reads the provenance stored with each
transition (episode id, step, weights version) in sequence order, the learner's `resumes.jsonl` (one
line per restart, with the updates it redid) and each actor's `weights.log` (the first weights of
each learner incarnation it received). Run it on a stopped run: opening the buffers takes their
folder locks. Exit status 0 when nothing is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from serl.audit_actor import ActorAudit, audit_actor, buffer_rows
from serl.run_progress import LearnerProgress

__all__ = ["ActorAudit", "AuditReport", "audit_actor", "audit_run", "main"]


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


def audit_run(run_dir: str | Path, expected_steps: int | None = None) -> AuditReport:
    """Audit a stopped run folder; `expected_steps`: each actor's env-step budget, to check the run
    reached it."""
    run_dir = Path(run_dir)
    buffers = run_dir / "buffers"
    online, demo = buffer_rows(buffers / "online"), buffer_rows(buffers / "demo")
    actor_dirs = sorted(p for p in (run_dir / "actor").glob("*")
                        if (p / "spool" / "produced.log").exists())
    actors = [audit_actor(d, online, demo) for d in actor_dirs]
    progress_files = LearnerProgress(run_dir)
    resumes = progress_files.resumes()
    incarnations = sorted({0, *(int(r["incarnation"]) for r in resumes)})
    seen = {i for a in actors for i in (*a.incarnations_seen, *a.incarnations_received)}
    progress = progress_files.read()
    steps = [int(p.name) for p in (run_dir / "checkpoints").glob("*") if p.name.isdigit()]
    report = AuditReport(str(run_dir), actors, incarnations, len(resumes),
                         sum(int(r["redone_updates"]) for r in resumes),
                         sorted(set(incarnations) - seen), progress.get("updates"),
                         max(steps, default=None), [])
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
        out.append(f"weights of learner incarnations {report.unseen_incarnations} never reached an "
                   "actor")
    if report.final_checkpoint is None or report.final_updates != report.final_checkpoint:
        out.append(f"the learner did not end with a checkpoint of its last update (progress "
                   f"{report.final_updates}, newest checkpoint {report.final_checkpoint})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serl.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the run folder, e.g. runs/sim_pick_cube_state")
    parser.add_argument("--steps", type=int, default=None,
                        help="each actor's env-step budget (checks it was met)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)
    report = audit_run(args.run_dir, args.steps)
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}))
    else:
        for a in report.actors:
            print(f"{a.actor_id}: produced {a.produced}, stored {a.stored} (lost {a.lost}, "
                  "duplicated "
                  f"{a.duplicated}), interventions {a.interventions} (demo missing "
                  f"{a.demo_missing}, duplicated "
                  f"{a.demo_duplicated}), weights of incarnations {a.incarnations_received} "
                  "received, "
                  f"{a.incarnations_seen} acted with")
        print(f"learner: {report.restarts} restarts, {report.redone_updates} updates redone, ended "
              "at update "
              f"{report.final_updates} (checkpoint {report.final_checkpoint})")
        print("\n".join(f"PROBLEM {p}" for p in report.problems)
              or "OK: nothing lost, duplicated or reordered")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
