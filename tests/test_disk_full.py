"""A full disk, made real with RLIMIT_FSIZE (writes past the limit fail with EFBIG, SIGXFSZ
ignored): the replay storage keeps exactly what it committed and carries on once space is back;
the learner, with `learner.on_disk_error=continue`, keeps training with the failed batches
unacknowledged (the actor keeps them in its spool) and stores them once the limit is lifted; with
`stop` it exits cleanly with a clear error, and the previous checkpoint resumes."""

import json
import resource
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager

import numpy as np
import pytest
from test_chaos import checkpoints, produced, progress
from test_two_process import Run, wait_for

from serl.audit import audit_run
from serl.data import ReplayStorage, TransitionSpec

SPEC = TransitionSpec({"state": ((4,), np.float32)}, action_dim=2)


def transitions(first: int, n: int) -> list[dict]:
    """Sequences first.. of one long episode (each observation is the previous next observation)."""
    obs = lambda i: {"state": np.full(4, i, np.float32)}  # noqa: E731
    return [{"observations": obs(i), "next_observations": obs(i + 1),
             "actions": np.zeros(2, np.float32), "rewards": np.float32(i), "masks": np.float32(1),
             "dones": np.bool_(False), "intervened": np.bool_(False),
             "grasp_penalty": np.float32(0), "episode_id": np.int64(0), "step": np.int32(i),
             "policy_version": np.zeros(2, np.int64), "classifier_version": np.int32(0),
             "timestamp": np.float64(i)} for i in range(first, first + n)]


@contextmanager
def file_size_limit(nbytes: int):
    """This process's writes past `nbytes` of any file fail with EFBIG while inside."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def partial_checkpoints(run):
    return [p.name for p in (run.run_dir / "checkpoints").iterdir() if "tmp" in p.name]


def stored(folder, chunk_size):
    with ReplayStorage(folder, SPEC, 10**6, chunk_size) as s:
        return ([seq for _, seq in s.origins(np.arange(len(s)))],
                s.get(np.arange(len(s)))["rewards"].tolist())


@pytest.mark.timeout(30)
@pytest.mark.parametrize("failing", ["chunk files", "commit log"])
def test_storage_keeps_what_it_committed_and_continues_after_a_write_failure(tmp_path, failing):
    # Small chunks make the commit log the biggest file,
    # so its record is the write that fails part-way.
    chunk_size = 256 if failing == "chunk files" else 2
    with ReplayStorage(tmp_path, SPEC, 10**6, chunk_size) as s:
        for first in range(0, 16, 4 if failing == "chunk files" else 1):
            s.append(transitions(first, 4 if failing == "chunk files" else 1), "a", first)
        in_use = (s.layout.row_dtype.itemsize * len(s) if failing == "chunk files"
                  else s._log.nbytes())
        with file_size_limit(in_use + 20):
            # the same batch twice: each attempt fails cleanly, nothing committed
            for _ in range(2):
                with pytest.raises(OSError):
                    s.append(transitions(16, 8), "a", 16)
                assert len(s) == 16 and s.watermarks() == {"a": 15}
        s.append(transitions(16, 8), "a", 16)  # space is back: the retry stores it once
        s.append(transitions(20, 8), "a", 20)  # a resend overlapping it: only 24..27 are new
    assert stored(tmp_path, chunk_size) == (list(range(28)), [float(i) for i in range(28)])


class Learner:
    """`serl learner` with its stderr read through a pipe
    (a log file would hit the file-size limit too)."""

    def __init__(self, run: Run, *extra: str):
        args = [sys.executable, "-m", "serl.cli", "learner", *run.common, *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True,
                                     env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"})
        run.procs.append(self.proc)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stderr.readline, "")),
                         daemon=True).start()

    def limit(self, nbytes: int | None) -> None:
        """Set (or with None lift) the learner's file-size limit from outside,
        as a disk filling up would."""
        hard = resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE,
                         (hard if nbytes is None else nbytes, hard))

    def said(self, *words: str) -> bool:
        return any(all(w in line for w in words) for line in list(self.lines))


@pytest.mark.timeout(240)
def test_learner_rides_out_a_full_disk_or_stops_cleanly_as_configured(tmp_path):
    run = Run(tmp_path, steps=10**6)
    try:
        learner = Learner(run, "--learner.disk-retry-s", "1")
        actor = run.start("actor")
        wait_for(lambda: 20 in checkpoints(run), 120, "the first checkpoint")
        learner.limit(4096)
        wait_for(lambda: learner.said("checkpoint at update", "File too large",
                                      "Training continues"), 60, "a failed checkpoint, reported")
        wait_for(lambda: learner.said("storing actor-0's transitions", "File too large"), 30,
                 "a failed buffer write, reported")
        trained = progress(run)["updates"]
        wait_for(lambda: progress(run)["updates"] > trained + 10, 60, "training to go on")
        assert max(checkpoints(run)) == 20  # the last good one
        learner.limit(None)  # space is back: the kept batches are stored and acknowledged
        wait_for(lambda: max(checkpoints(run)) > trained, 60, "a checkpoint once space is back")
        run.steps = produced(run) + 40
        actor.send_signal(signal.SIGTERM)
        assert actor.wait(timeout=30) == 0
        actor = run.start("actor")
        assert actor.wait(timeout=90) == 0  # its budget reached and everything acknowledged
        learner.proc.send_signal(signal.SIGTERM)
        assert learner.proc.wait(timeout=30) == 0
        # the failed saves' folders are gone (none is being written now)
        assert not partial_checkpoints(run)
        last_good = max(checkpoints(run))
        # The same fault with on_disk_error=stop:
        # a clear error, exit status 3, nothing half-written.
        learner = Learner(run, "--resume", "--learner.on-disk-error", "stop")
        wait_for(lambda: progress(run).get("incarnation") == 1, 90, "the resumed learner")
        learner.limit(4096)
        assert learner.proc.wait(timeout=90) == 3
        assert learner.said("serl learner:", "File too large",
                            "Stopping (learner.on_disk_error=stop)")
        assert max(checkpoints(run)) == last_good
        # The previous checkpoint resumes (and the failed write's partial folder is cleared).
        learner = Learner(run, "--resume")
        wait_for(lambda: progress(run).get("incarnation") == 2, 90,
                 "the learner resumed after the stop")
        last_resume = json.loads((run.run_dir / "resumes.jsonl").read_text().splitlines()[-1])
        assert last_resume["restored_update"] == last_good
        wait_for(lambda: max(checkpoints(run)) > last_good, 60, "a new checkpoint")
        learner.proc.send_signal(signal.SIGTERM)
        assert learner.proc.wait(timeout=30) == 0
        assert not partial_checkpoints(run)
    finally:
        run.close()
    assert max(checkpoints(run)) >= last_good
    report = audit_run(run.run_dir, expected_steps=run.steps)
    (a,) = report.actors
    assert a.produced == a.stored and a.lost == a.duplicated == a.demo_missing == 0
    # they ran with no actor
    assert len(report.problems) == 1 and report.unseen_incarnations == [1, 2]
