"""Chaos-test hooks: with `SERL_FAULT=name:N` in the environment (several comma-separated), a
process kills itself with SIGKILL at the Nth pass of the named point; with `name:N@PATH` passes
count only once the file PATH exists, so a test picks the time and the point picks the exact moment.
Real failures at chosen moments, for tests and `bench/chaos.py`; a no-op in normal runs (one
environment lookup).

Points: `after_append` (learner: a batch durably stored, not yet acknowledged), `between_buffers`
(learner: a batch's intervention steps in the demo buffer, its online write not yet done),
`during_checkpoint` (learner: while orbax writes a checkpoint, before it is committed),
`mid_episode` (actor: a transition spooled, its episode not finished).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

_hits: dict[str, int] = {}


def _armed(name: str) -> int | None:
    """N of `name:N` (or of `name:N@PATH` once PATH exists) in SERL_FAULT, or None."""
    for spec in os.environ.get("SERL_FAULT", "").split(","):
        if spec.startswith(name + ":"):
            n, _, trigger = spec.split(":", 1)[1].partition("@")
            return None if trigger and not os.path.exists(trigger) else int(n)
    return None


def fault_hit(name: str) -> bool:
    """Count a pass of point `name`; True from its Nth pass on (never when SERL_FAULT does not name
    it)."""
    n = _armed(name)
    if n is None:
        return False
    _hits[name] = _hits.get(name, 0) + 1
    return _hits[name] >= n


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def fault_point(name: str) -> None:
    """SIGKILL this process the Nth time it passes point `name` (see the module docstring)."""
    if fault_hit(name):
        kill_self()


class KillDuringWrite:
    """At the Nth pass of point `name`, watch `folder` and SIGKILL the process as soon as a
    temporary entry (one whose name contains `marker`) appears in it, i.e. in the middle of the
    write; at exit, if none was seen, kill anyway (the write then was too fast to catch and the kill
    lands just after it)."""

    def __init__(self, name: str, folder: Path, marker: str = "tmp"):
        self.armed = fault_hit(name)
        self.folder, self.marker = Path(folder), marker
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True) if self.armed else None

    def _watch(self) -> None:
        while not self._done.is_set():
            try:
                if any(self.marker in p.name for p in self.folder.iterdir()):
                    kill_self()
            except FileNotFoundError:
                pass
            time.sleep(0.0005)

    def __enter__(self) -> KillDuringWrite:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._done.set()
            self._thread.join()
            kill_self()
