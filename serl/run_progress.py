"""The learner's bookkeeping files in a run folder: `learner_progress.json` (update counter and
incarnation, rewritten at every publication and checkpoint, so a restart knows how many updates it
redoes) and `resumes.jsonl` (one line per restart: the incarnation, the update restored and the
updates redone; what `serl.audit` counts)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from serl.durable import fsync_directory, fsync_file, write_json

log = logging.getLogger("serl.learner")


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append `lines` (each given without its newline) to `path` and make them durable: fsync of the
    file, and of its folder when the file is new. A crash may tear only a line being appended."""
    path = Path(path)
    new = not path.exists()
    with path.open("a") as f:
        f.writelines(line + "\n" for line in lines)
    fsync_file(path)
    if new:
        fsync_directory(path.parent)


class LearnerProgress:
    def __init__(self, run_dir: Path):
        self.path, self.resumes_path = (
            Path(run_dir) / "learner_progress.json",
            Path(run_dir) / "resumes.jsonl",
        )

    def read(self) -> dict:
        """{"updates", "incarnation"} as last written, or {} if none (or unreadable)."""
        try:
            progress = json.loads(self.path.read_text())
            return {
                "updates": int(progress["updates"]),
                "incarnation": int(progress["incarnation"]),
            }
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return {}

    def write(self, updates: int, incarnation: int, durable: bool = True) -> None:
        """Replace the file atomically; best effort (a full disk is reported, not raised).
        `durable` for the records a promise rests on (a new incarnation, a checkpoint); the
        periodic count at each publication only has to survive a process crash."""
        try:
            write_json(self.path, {"updates": updates, "incarnation": incarnation},
                       durable=durable)
        except OSError as err:
            log.error("could not record the learner's progress in %s: %s", self.path, err)

    def record_resume(self, incarnation: int, restored_update: int, redone_updates: int) -> None:
        append_lines(
            self.resumes_path,
            [
                json.dumps(
                    {
                        "incarnation": incarnation,
                        "restored_update": restored_update,
                        "redone_updates": redone_updates,
                        "time": time.time(),
                    }
                )
            ],
        )

    def resumes(self) -> list[dict]:
        """Every restart recorded (a line torn by a crash is skipped)."""
        if not self.resumes_path.exists():
            return []
        lines = self.resumes_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip().endswith("}")]
