"""Chaos run (short): `serl learner` and `serl actor` as real processes over ZeroMQ, each SIGKILLed
twice at an adversarial moment (the learner during a checkpoint write and between a batch's
insertion and its acknowledgement, the actor mid-episode), then both stopped with SIGINT mid-run;
every restart uses --resume (the actor resumes from its spool). `serl.audit` then checks the run:
nothing lost or duplicated, counters and weight versions only went forward, the redone updates
counted, every learner incarnation's weights acted, the run reached its end.

Faults are armed by trigger files (`SERL_FAULT=point:1@FILE`): the test picks when, the process
picks the exact moment (e.g. the next transition of an unfinished episode)."""

import json
import signal
import time

import pytest
from test_two_process import Run, wait_for

from serl.audit import audit_run

# evaluations are not stored: every incarnation shows in the buffer
NO_EVAL = ("--actor.eval-every-episodes", "0")
MORE_STEPS = 120  # the last actor's budget beyond what was produced before it


def progress(run):
    try:
        return json.loads((run.run_dir / "learner_progress.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def checkpoints(run):
    return {int(p.name) for p in (run.run_dir / "checkpoints").glob("*") if p.name.isdigit()}


def produced(run):
    return sum(r.count for r in run.produced())


def connects(run):
    """How many times an actor was welcomed by a learner (each actor logs it; weights follow at
    once)."""
    log = run.root / "actor.log"
    return log.read_text().count("connected to the learner;") if log.exists() else 0


def trigger(run, name):
    (run.root / name).touch()


def armed(run, point, name):
    return f"{point}:1@{run.root / name}"


@pytest.mark.timeout(240)
def test_chaos_kills_lose_nothing_and_the_audit_proves_it(tmp_path):
    run = Run(tmp_path, steps=10**6)
    try:
        # 1. The learner dies while orbax writes its second checkpoint; the actor keeps acting,
        #    spooling.
        learner = run.start("learner", fault=armed(run, "during_checkpoint", "kill-l0"))
        actor = run.start("actor", *NO_EVAL, fault=armed(run, "mid_episode", "kill-a0"))
        wait_for(lambda: 20 in checkpoints(run), 120, "the first checkpoint")
        trigger(run, "kill-l0")
        assert learner.wait(timeout=60) == -signal.SIGKILL
        partial = [p.name for p in (run.run_dir / "checkpoints").iterdir() if "tmp" in p.name]
        assert partial, "the learner was to die in the middle of a checkpoint write"
        # the learner is down: the actor keeps acting with its last weights, spooling
        before = produced(run)
        wait_for(lambda: produced(run) > before + 30, 30,
                 "the actor to keep acting while the learner is down")
        # 2. Resumed; once it has redone its lost updates and checkpointed, the actor dies
        #    mid-episode.
        learner = run.start("learner", "--resume", fault=armed(run, "after_append", "kill-l1"))
        seen = connects(run)
        wait_for(lambda: progress(run).get("incarnation") == 1 and 40 in checkpoints(run), 90,
                 "the resumed learner")
        wait_for(lambda: connects(run) > seen, 30, "the actor to reconnect")
        before = produced(run)
        wait_for(lambda: produced(run) > before + 30, 30, "the actor to act on the new weights")
        trigger(run, "kill-a0")
        assert actor.wait(timeout=30) == -signal.SIGKILL
        # 3. A new actor resends its backlog; the learner dies between storing a batch and
        #    acknowledging it.
        actor = run.start("actor", *NO_EVAL, fault=armed(run, "mid_episode", "kill-a1"))
        trigger(run, "kill-l1")
        assert learner.wait(timeout=90) == -signal.SIGKILL
        # 4. Resumed again; the second actor dies mid-episode once this incarnation's weights reach
        #    it.
        seen = connects(run)
        learner = run.start("learner", "--resume")
        wait_for(lambda: connects(run) > seen, 90,
                 "the actor to reconnect to the second resumed learner")
        before = produced(run)
        wait_for(lambda: produced(run) > before + 60, 60, "the actor to act on the new weights")
        trigger(run, "kill-a1")
        assert actor.wait(timeout=30) == -signal.SIGKILL
        # 5. SIGINT to both sides mid-run: each flushes, checkpoints and exits within 10 s.
        actor = run.start("actor", *NO_EVAL)
        before = produced(run)
        wait_for(lambda: produced(run) > before + 50, 60, "the third actor acting")
        for proc in (actor, learner):
            proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        assert actor.wait(timeout=30) == 0 and learner.wait(timeout=30) == 0
        assert time.monotonic() - start < 10.0
        assert progress(run)["updates"] in checkpoints(run)
        # 6. Both resume and finish: the actor its step budget, the learner on SIGTERM.
        run.steps = produced(run) + MORE_STEPS
        learner = run.start("learner", "--resume")
        actor = run.start("actor", *NO_EVAL)
        assert actor.wait(timeout=120) == 0
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(timeout=30) == 0
    finally:
        run.close()

    report = audit_run(run.run_dir, expected_steps=run.steps)
    assert report.ok, report.problems
    (a,) = report.actors
    assert a.produced == a.stored >= run.steps and a.lost == a.duplicated == 0
    assert a.interventions > 0
    assert report.incarnations == [0, 1, 2, 3] and report.unseen_incarnations == []
    # every incarnation's weights acted
    assert a.incarnations_seen == a.incarnations_received == [0, 1, 2, 3]
    resumes = [
        json.loads(line) for line in (run.run_dir / "resumes.jsonl").read_text().splitlines()
    ]
    # Killed writing a checkpoint (that of update 40 unless the trigger came late on a loaded
    # machine): resumed from the one before it, the 20 updates since (checkpoint_every) redone and
    # counted.
    assert resumes[0]["restored_update"] % 20 == 0 and resumes[0]["restored_update"] >= 20
    assert resumes[0]["redone_updates"] == 20
    assert report.redone_updates >= 20
