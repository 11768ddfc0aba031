"""The learner's bookkeeping files in a run folder: `learner_progress.json` (update counter and incarnation,
rewritten at every publication and checkpoint, so a restart knows how many updates it redoes) and `resumes.jsonl`
(one line per restart: the incarnation, the update restored and the updates redone; what `serl.audit` counts)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

log = logging.getLogger("serl.learner")


class LearnerProgress:
    def __init__(self, run_dir: Path):
        self.path, self.resumes_path = Path(run_dir) / "learner_progress.json", Path(run_dir) / "resumes.jsonl"

    def read(self) -> dict:
        """{"updates", "incarnation"} as last written, or {} if none (or unreadable)."""
        try:
            progress = json.loads(self.path.read_text())
            return {"updates": int(progress["updates"]), "incarnation": int(progress["incarnation"])}
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return {}

    def write(self, updates: int, incarnation: int) -> None:
        """Replace the file atomically; best effort (a full disk is reported, not raised)."""
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"updates": updates, "incarnation": incarnation}))
            tmp.replace(self.path)
        except OSError as err:
            log.error("could not record the learner's progress in %s: %s", self.path, err)

    def record_resume(self, incarnation: int, restored_update: int, redone_updates: int) -> None:
        with open(self.resumes_path, "a") as f:
            f.write(json.dumps({"incarnation": incarnation, "restored_update": restored_update,
                                "redone_updates": redone_updates, "time": time.time()}) + "\n")

    def resumes(self) -> list[dict]:
        """Every restart recorded (a line torn by a crash is skipped)."""
        if not self.resumes_path.exists():
            return []
        lines = self.resumes_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip().endswith("}")]
