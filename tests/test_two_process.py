"""Learner and actor as separate processes over ZeroMQ on loopback, killed with SIGKILL at bad
moments and restarted: every transition the actor produced is in the online buffer exactly once, and
every intervention step once more in the demo buffer."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from serl.data import ReplayStorage, TransitionSpec
from serl.ports import free_ports
from serl.transport.produced_log import read_produced_log


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Run:
    def __init__(self, tmp_path, steps):
        self.root = tmp_path
        data_port, weights_port = free_ports(2)
        self.common = ["sim_pick_cube_state", "--runs-dir", str(tmp_path), "--run", "r",
                       "--demos-dir", str(tmp_path / "no-demos"),
                       "--transport.data-port", str(data_port), "--transport.weights-port",
                       str(weights_port),
                       "--learner.min-online", "40", "--learner.min-demo", "10",
                       "--learner.publish-every", "5",
                       "--learner.checkpoint-every", "20", "--agent.batch-size", "16",
                       "--agent.hidden-dims", "32",
                       "32", "--operator.takeover-prob", "0.15", "--env.max-episode-steps", "30",
                       "--env.control-hz", "50", "--env.realtime",
                       # The task's update-to-data limit would stall the actor while the learner is
                       # down, which these tests need it to go on acting through.
                       "--actor.free-steps", str(10**9)]
        self.steps = steps
        self.procs: list[subprocess.Popen] = []

    def start(self, role, *extra, fault=None):
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        if fault:
            env["SERL_FAULT"] = fault
        args = [sys.executable, "-m", "serl.cli", role, *self.common, *extra]
        if role == "actor":
            args += ["--actor.max-env-steps", str(self.steps)]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=open(self.root / f"{role}.log", "a"))
        self.procs.append(proc)
        return proc

    @property
    def run_dir(self):
        return self.root / "r"

    def produced(self):
        path = self.run_dir / "actor" / "actor-0" / "spool" / "produced.log"
        return read_produced_log(path) if path.exists() else []

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.timeout(240)
def test_kills_lose_nothing_and_duplicate_nothing(tmp_path):
    run = Run(tmp_path, steps=450)
    try:
        # 1. A learner that SIGKILLs itself between a batch's durable append and its
        #    acknowledgement.
        learner = run.start("learner", fault="after_append:4")
        actor = run.start("actor")
        assert learner.wait(timeout=120) == -signal.SIGKILL
        #    Restarted, it SIGKILLs itself between its two writes of a batch with intervention
        #    steps (the online and the demo buffer): the resent batch must complete both.
        learner = run.start("learner", "--resume", fault="between_buffers:2")
        assert learner.wait(timeout=120) == -signal.SIGKILL
        # 2. Restarted, then killed at an arbitrary moment once training has begun.
        learner = run.start("learner", "--resume")
        wait_for(lambda: (run.run_dir / "checkpoints" / "20").exists(), 120,
                 "a checkpoint after the restart")
        learner.kill()
        learner.wait()
        # 3. The actor is killed mid-episode and restarted: it resends what was never acknowledged.
        wait_for(lambda: sum(r.count for r in run.produced()) > 150, 60,
                 "the actor to produce 150 steps")
        actor.kill()
        actor.wait()
        actor = run.start("actor")
        learner = run.start("learner", "--resume")
        assert actor.wait(timeout=150) == 0  # its step budget reached and everything acknowledged
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(timeout=60) == 0
    finally:
        run.close()

    produced = run.produced()
    sequences = [s for r in produced for s in range(r.first, r.last + 1)]
    # never went backwards
    assert sequences == list(range(len(sequences))) and len(sequences) >= 450
    spec = TransitionSpec.from_json(__import__("json").loads((run.run_dir / "buffers" / "online" /
                                                             "storage.json").read_text())["spec"])
    with ReplayStorage(run.run_dir / "buffers" / "online", spec, capacity=10**6) as online:
        origins = online.origins(np.arange(len(online)))
        assert sorted(origins) == [("actor-0", s) for s in sequences]  # each exactly once
        stored = online.get(np.arange(len(online)))
        intervened = {o for o, hit in zip(origins, stored["intervened"], strict=True) if hit}
        episodes = stored["episode_id"]
    with ReplayStorage(run.run_dir / "buffers" / "demo", spec, capacity=10**6) as demo:
        demo_origins = demo.origins(np.arange(len(demo)))
    assert sorted(demo_origins) == sorted(intervened)
    assert len(set(demo_origins)) == len(demo_origins)
    known = [r.interventions for r in produced if r.interventions >= 0]
    if len(known) == len(produced):
        assert sum(known) == len(intervened)
    # Episode ids never repeat across the actor's restart: ids are claimed before use.
    order = np.argsort([s for _, s in origins])
    assert np.all(np.diff(episodes[order]) >= 0)


@pytest.mark.timeout(180)
def test_three_actors_into_one_learner(tmp_path):
    run = Run(tmp_path, steps=80)
    try:
        learner = run.start("learner")
        actors = [
            run.start("actor", "--actor.actor-id", f"robot-{i}", "--seed", str(i)) for i in range(3)
        ]
        assert [a.wait(timeout=150) for a in actors] == [0, 0, 0]
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(timeout=60) == 0
    finally:
        run.close()
    spec = TransitionSpec.from_json(
        __import__("json").loads((run.run_dir / "buffers" / "online" / "storage.json").read_text())[
            "spec"
        ]
    )
    with ReplayStorage(run.run_dir / "buffers" / "online", spec, capacity=10**6) as online:
        origins = online.origins(np.arange(len(online)))
        assert online.watermarks() == {
            f"robot-{i}": max(s for a, s in origins if a == f"robot-{i}") for i in range(3)
        }
    for i in range(3):
        produced = read_produced_log(
            run.run_dir / "actor" / f"robot-{i}" / "spool" / "produced.log"
        )
        sequences = [s for r in produced for s in range(r.first, r.last + 1)]
        assert (
            sorted(s for a, s in origins if a == f"robot-{i}")
            == sequences
            == list(range(len(sequences)))
        )


@pytest.mark.timeout(120)
def test_mismatched_agent_config_is_refused_naming_the_field(tmp_path):
    run = Run(tmp_path, steps=50)
    try:
        run.start("learner")
        actor = run.start("actor", "--agent.discount", "0.9")
        assert actor.wait(timeout=100) != 0
    finally:
        run.close()
    for side in ("actor", "learner"):  # both sides say what differs
        log = (tmp_path / f"{side}.log").read_text()
        assert "refused" in log and "agent.discount" in log and "0.9" in log and "0.97" in log


@pytest.mark.timeout(180)
def test_sigterm_stops_both_sides_within_ten_seconds_and_resume_continues(tmp_path):
    run = Run(tmp_path, steps=100_000)
    try:
        learner = run.start("learner")
        actor = run.start("actor")
        wait_for(
            lambda: (run.run_dir / "learner_progress.json").exists(),
            120,
            "the learner to start updating",
        )
        for proc in (actor, learner):
            proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        assert actor.wait(timeout=30) == 0 and learner.wait(timeout=30) == 0
        assert time.monotonic() - start < 10.0
        progress = __import__("json").loads((run.run_dir / "learner_progress.json").read_text())
        # checkpointed on the way out
        assert (run.run_dir / "checkpoints" / str(progress["updates"])).is_dir()
        learner = run.start("learner", "--resume")
        wait_for(
            lambda: (
                __import__("json").loads((run.run_dir / "learner_progress.json").read_text())[
                    "incarnation"
                ]
                == 1
            ),
            60,
            "the resumed learner",
        )
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(timeout=30) == 0
    finally:
        run.close()
