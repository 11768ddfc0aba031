"""The arm under faults during training, through the ROS 2 robot server and the simulated Franka
driver (one rig launch for the module; real rclpy nodes, real ZeroMQ, real learner):
1. the learner (`serl learner`, a subprocess) is SIGKILLed: the actor keeps acting on the arm with
   its last weights, the scripted operator keeps taking over, everything is spooled, and a learner
   restarted with --resume receives every spooled transition exactly once (serl.audit);
2. a reflex is injected mid-episode while an in-process learner trains: the episode is truncated,
   the next reset waits for the operator's confirm_reset, and with it the arm recovers and training
   goes on."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from robot_server.rig_helpers import RosProbe, rig_config_for_tests, wait_until

from robot_servers.launch import launch_sim_rig
from serl.audit import audit_run
from serl.commands.config_args import parse_task_config
from serl.commands.train import free_port_overrides
from serl.devices.base import IDLE, DeviceState
from serl.envs.franka_config import device_confirmation

FIGURES: dict[str, float] = {}  # printed at the end of the module (docs/reliability.md quotes them)


@pytest.fixture(scope="module")
def rig():
    with launch_sim_rig(rig_config_for_tests(), timeout_s=90) as launched:
        yield launched
    print("\narm-fault training figures:", {k: round(v, 3) for k, v in FIGURES.items()})


def task_argv(rig, tmp: Path, run: str, *extra: str) -> list[str]:
    """sim_pick_cube_ros on the shared rig, state only, tiny networks and short episodes, no rate
    limit."""
    return [
        "sim_pick_cube_ros",
        "--env.hardware-config",
        str(rig.config_path),
        "--env.no-launch-sim",
        "--env.ros-domain-id",
        str(rig.domain_id),
        "--env.no-image-obs",
        "--agent.encoder.image-keys",
        "--env.max-episode-steps",
        "20",
        "--runs-dir",
        str(tmp),
        "--demos-dir",
        str(tmp / "demos"),
        "--demo-episodes",
        "0",
        "--learner.min-online",
        "20",
        "--learner.min-demo",
        "5",
        "--learner.publish-every",
        "5",
        "--agent.batch-size",
        "16",
        "--agent.hidden-dims",
        "32",
        "32",
        "--operator.takeover-prob",
        "0.2",
        "--operator.takeover-steps",
        "5",
        "--actor.eval-every-episodes",
        "0",
        "--run",
        run,
        *extra,
    ]


def config_of(argv: list[str]):
    parser = argparse.ArgumentParser()
    parser.add_argument("--run")
    return parse_task_config(parser, argv)[1]


class Row(NamedTuple):
    at: float  # monotonic time the transition was added
    intervened: bool
    done: bool
    mask: float  # 1 unless terminated
    xyz: np.ndarray  # measured TCP position after the step
    step: int  # step within its episode
    version: tuple[int, int]  # (incarnation, step) of the weights that acted


class Recorder:
    """Delegates to the real adder; remembers (time, intervened, done, measured tcp xyz) of each
    transition."""

    def __init__(self, adder, raw):
        self.adder, self.raw, self.rows = adder, raw, []

    def add(self, t: dict) -> None:
        self.adder.add(t)
        xyz = np.array(self.raw.robot_state["tcp_pose"][:3])
        self.rows.append(
            Row(
                time.monotonic(),
                bool(t["intervened"]),
                bool(t["dones"]),
                float(t["masks"]),
                xyz,
                int(t["step"]),
                tuple(int(v) for v in t["policy_version"]),
            )
        )

    def flush(self, timeout: float) -> bool:
        return self.adder.flush(timeout)

    def __getattr__(self, name):
        return getattr(self.adder, name)

    def since(self, t0: float) -> list[Row]:
        return [r for r in list(self.rows) if r.at > t0]


def start_learner(argv: list[str], log: Path, resume: bool = False) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "serl.cli", "learner", *argv, *(["--resume"] if resume else [])],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.timeout(240)
def test_learner_killed_the_actor_keeps_acting_on_the_arm_and_resume_gets_everything_once(
    rig, tmp_path
):
    from serl.actor.build import build_actor, zmq_actor_side
    from serl.commands.runtime import build_env

    argv = task_argv(rig, tmp_path, "down", *free_port_overrides())
    config = config_of(argv)
    log = tmp_path / "learner.log"
    learner = start_learner(argv, log)
    # The learner owns the run folder (a fresh run refuses an existing one): the actor's state goes
    # in once it is made.
    assert wait_until(
        lambda: (tmp_path / "down" / "config.json").exists() or learner.poll() is not None, 60
    )
    assert learner.poll() is None, log.read_text()[-3000:]
    env = build_env(config)
    raw = env.unwrapped
    actor_dir = tmp_path / "down" / "actor"
    # as `serl actor` wires it, with every added transition recorded on its way to the spool
    side = zmq_actor_side(config, actor_dir, "down")
    adder = Recorder(side.adder, raw)
    actor = build_actor(config, dataclasses.replace(side, adder=adder), actor_dir, env)
    stop = threading.Event()
    thread = threading.Thread(target=actor.run, args=(stop,), daemon=True)
    restarted = None
    try:
        thread.start()
        current = lambda: actor.counters.weights  # noqa: E731
        trained = lambda: current() is not None and current().step >= 5  # noqa: E731
        assert wait_until(lambda: trained() or learner.poll() is not None, 150), (
            f"no trained weights reached the actor; the learner's log:\n{log.read_text()[-3000:]}"
        )
        assert learner.poll() is None, log.read_text()[-3000:]
        learner.send_signal(signal.SIGKILL)
        learner.wait(timeout=10)
        killed, steps = time.monotonic(), actor.counters.env_steps
        time.sleep(1.0)  # weights published just before the kill may still be on their way
        weights = actor.counters.weights
        # The actor keeps acting with its last weights; the operator keeps taking over; the arm
        # moves.
        outage = lambda: adder.since(killed)  # noqa: E731
        assert wait_until(
            lambda: sum(r.intervened for r in outage()) >= 3 and len(outage()) >= 40, 60
        )
        after = adder.since(killed)
        assert (
            actor.counters.weights == weights and thread.is_alive()
        )  # no newer weights: it acts with the last
        assert {r.version for r in adder.since(killed + 1.0)} == {
            (weights.incarnation, weights.step)
        }
        xyz = np.array([r.xyz for r in after])
        assert (
            np.linalg.norm(xyz.max(axis=0) - xyz.min(axis=0)) > 0.01
        )  # measured poses changed by over 1 cm
        assert not adder.adder.flush(0.1)  # nothing acknowledged: it is all in the spool
        FIGURES["steps_during_outage"] = actor.counters.env_steps - steps
        FIGURES["interventions_during_outage"] = sum(r.intervened for r in adder.since(killed))
        FIGURES["outage_s"] = time.monotonic() - killed
        restarted = start_learner(argv, log, resume=True)
        back = time.monotonic()
        assert wait_until(lambda: actor.counters.weights.incarnation == 1, 150), log.read_text()[
            -3000:
        ]
        FIGURES["learner_restart_to_new_weights_s"] = time.monotonic() - back
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()
        flushed = adder.adder.flush(60) if restarted is not None else False
        side.close()
        env.close()
        for proc in (learner, restarted):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    assert flushed
    report = audit_run(tmp_path / "down")
    assert report.ok, report.problems
    a = report.actors[0]
    assert a.produced == a.stored == actor.counters.env_steps and a.interventions > 0
    FIGURES["audited_produced_and_stored"], FIGURES["audited_interventions"] = (
        a.stored,
        a.interventions,
    )


class ModeLog:
    """(monotonic time, mode) of the driver's robot-mode topic: "ok" or the fault."""

    def __init__(self, probe: RosProbe, topic: str):
        from std_msgs.msg import String

        from robot_servers import ros_msgs as rm

        self.samples: list[tuple[float, str]] = []
        probe.node.create_subscription(
            String, topic, lambda m: self.samples.append((time.monotonic(), m.data)), rm.STATE_QOS
        )

    def since(self, t0: float) -> list[str]:
        return [m for t, m in list(self.samples) if t > t0]


class GatedConfirm:
    """An operator device whose confirm_reset is pressed only once the test opens the gate."""

    def __init__(self):
        self.gate, self.reads = threading.Event(), 0

    def read(self) -> DeviceState:
        self.reads += 1
        return (
            DeviceState(np.zeros(7, np.float32), ("confirm_reset",)) if self.gate.is_set() else IDLE
        )


@pytest.mark.timeout(200)
def test_reflex_during_training_truncates_waits_for_confirmation_and_training_continues(
    rig, tmp_path
):
    from serl.actor.loop import Actor
    from serl.commands.runtime import build_env
    from serl.learner.loop import Learner
    from serl.transport.inprocess import InProcessTransport

    # No take-overs here: the (untrained) policy alone never finishes an episode early, so the
    # reflex lands mid-episode.
    config = config_of(
        task_argv(
            rig,
            tmp_path,
            "reflex",
            "--env.max-episode-steps",
            "40",
            "--operator.takeover-prob",
            "0",
        )
    )
    transport = InProcessTransport()
    env = build_env(config)
    raw = env.unwrapped
    asked: list[str] = []
    device = GatedConfirm()
    confirm = device_confirmation(device, poll_s=0.01, timeout_s=120)
    raw.confirm_recovery = lambda reason: asked.append(reason) or confirm(reason)
    learner = Learner(
        config.agent,
        config.learner,
        env.observation_space,
        env.action_space,
        tmp_path / "reflex",
        transport.transition_source(),
        transport.publisher(),
        seed=0,
        demos_dir=config.demos_dir,
    )
    adder = Recorder(transport.adder("actor-0", 0), raw)
    actor = Actor(
        env,
        config.agent,
        config.actor,
        adder,
        transport.variable_client(),
        transport.stats_sink("actor-0"),
        state_dir=tmp_path / "reflex" / "actor",
    )
    learner.publish()
    stop = threading.Event()
    threads = [
        threading.Thread(target=actor.run, args=(stop,), daemon=True),
        threading.Thread(target=learner.run, args=(stop,), daemon=True),
    ]
    probe = RosProbe(rig.domain_id)
    modes = ModeLog(probe, rig.config.ros.robot_mode)
    try:
        for th in threads:
            th.start()
        assert wait_until(lambda: learner.counters.updates >= 5 and len(adder.rows) >= 45, 150)
        reflex = f"{raw.rig.ros.sim_namespace}/inject_reflex"
        probe.ready(reflex)
        # Mid-episode (not at its first or last steps): inject the reflex.
        assert wait_until(lambda: 5 <= adder.rows[-1].step <= 20 and not adder.rows[-1].done, 30)
        # Taken before the trigger: its reply can arrive after the env already saw the fault.
        injected = time.monotonic()
        probe.trigger(reflex)
        assert wait_until(lambda: any(r.done for r in adder.since(injected)), 10)
        cut = next(r for r in adder.since(injected) if r.done)
        assert (
            cut.mask == 1.0 and cut.step < 39
        )  # truncated by the fault, not terminated nor at the step limit
        FIGURES["reflex_to_truncation_s"] = cut.at - injected
        # The next reset waits for the operator: no steps, the arm stays in its fault (nothing
        # recovers it).
        assert wait_until(lambda: asked, 10) and "reflex" in asked[0]
        produced, reads, waiting = len(adder.rows), device.reads, time.monotonic()
        time.sleep(2.0)
        assert len(adder.rows) == produced and device.reads > reads and threads[0].is_alive()
        held = modes.since(waiting)
        assert held and all("reflex" in m for m in held), held[-3:]
        updates = learner.counters.updates
        device.gate.set()
        confirmed = time.monotonic()
        assert wait_until(lambda: len(adder.rows) > produced, 30), (
            "no step after the operator confirmed"
        )
        FIGURES["confirm_to_first_step_s"] = adder.rows[produced].at - confirmed
        assert wait_until(lambda: "ok" in modes.since(confirmed), 10)
        FIGURES["confirm_to_mode_ok_s"] = (
            next(t for t, m in modes.samples if t > confirmed and m == "ok") - confirmed
        )
        assert not adder.rows[
            produced
        ].done  # the recovered episode goes on (not cut by the old fault)
        # Training goes on: more transitions and updates after recovery.
        assert wait_until(
            lambda: len(adder.rows) >= produced + 20 and learner.counters.updates > updates + 5, 90
        )
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=60)
        probe.close()
        while learner.ingest(timeout=0.1):
            pass
        learner.checkpoint()
        learner.close()
        env.close()
    assert not any(th.is_alive() for th in threads)
