"""`serl train sim_pick_cube_fci` as a lab runs it (the CLI, two processes), through FrankaEnv, the
robot server, the libfranka adapter and franky to franky-sim, each launched by the env on a private
ROS domain, port and loopback FCI address; then `serl eval` on that run, which must launch the rig
again. Tiny budgets: this checks the path, not learning (bench/sample_efficiency.py does that)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

STEPS = 60  # the actor's budget: 6 s of acting at the rig's 10 Hz, plus resets
EPISODE_STEPS = 20
TINY = ["--demo-episodes", "0", "--learner.min-online", "20", "--learner.min-demo", "10",
        "--learner.publish-every", "5", "--agent.batch-size", "16", "--agent.hidden-dims", "32",
        "32", "--operator.takeover-prob", "0.2", "--operator.takeover-steps", "5",
        "--env.max-episode-steps", str(EPISODE_STEPS), "--actor.eval-every-episodes", "0",
        "--actor.max-env-steps", str(STEPS),
        # at most 2 steps an update after the first 20: the actor cannot finish before the
        # learner's updates (a cold JAX cache compiles for ~30 s) reach it
        "--actor.max-steps-per-update", "2", "--actor.free-steps", "20"]
RIG_MODULES = ("robot_servers.launch", "robot_servers.franky_sim_rig",
               "robot_servers.franka_server")


def processes_under(folder: Path) -> dict[int, str]:
    """pid -> command line of the live processes whose command line names `folder` (TMPDIR points
    there, so every rig file a launch writes does)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if str(folder) in cmdline and state != "Z":
            found[int(proc.name)] = cmdline
    return found


class Watch:
    """Which rig modules ran under `folder` while the block ran (polled every 0.2 s)."""

    def __init__(self, folder: Path):
        self.folder, self.seen, self._stop = folder, set(), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for cmdline in processes_under(self.folder).values():
                self.seen |= {m for m in RIG_MODULES if f"-m {m} " in cmdline}

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_cli(args: list[str], env: dict, timeout_s: float) -> subprocess.CompletedProcess:
    """`serl ARGS` in its own process group; on a timeout the whole group is killed."""
    proc = subprocess.Popen([sys.executable, "-m", "serl.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"serl {args[0]} did not finish within {timeout_s} s:\n{err[-3000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of the group left behind
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stored(run: Path) -> dict:
    from serl.data import ReplayStorage, TransitionSpec

    folder = run / "buffers" / "online"
    spec = TransitionSpec.from_json(json.loads((folder / "storage.json").read_text())["spec"])
    with ReplayStorage(folder, spec, capacity=10**6) as storage:
        rows = np.arange(len(storage))
        return {"origins": storage.origins(rows), **storage.get(rows)}


@pytest.mark.timeout(150)
def test_serl_train_on_the_franky_sim_rig_then_serl_eval_launches_it_again(tmp_path):
    from experiments.base import RigExperimentConfig
    from serl.config_io import load_run_config

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    run = tmp_path / "fci"
    try:
        with Watch(tmp) as training:
            trained = run_cli(["train", "sim_pick_cube_fci", "--runs-dir", str(tmp_path), "--run",
                               "fci", "--demos-dir", str(tmp_path / "demos"), *TINY], env, 100)
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert training.seen == set(RIG_MODULES), training.seen
        rows = stored(run)
        # every transition, in order; the budget ends the run at the first episode end at or past
        # it (an episode that succeeds early leaves the budget inside the next one)
        produced = len(rows["origins"])
        assert STEPS <= produced < STEPS + EPISODE_STEPS, produced
        assert rows["origins"] == [("actor-0", s) for s in range(produced)]
        assert rows["dones"][-1], "the run stopped inside an episode"
        assert json.loads((run / "learner_progress.json").read_text())["updates"] > 0
        # the actor acted with weights the learner trained (version = (incarnation, update))
        assert rows["policy_version"][:, 1].max() > 0, rows["policy_version"][-5:]
        # the privileged cube pose was observed (flattened state: its xyz differs from the TCP's)
        assert np.ptp(rows["observations"]["state"][:, -6:-3], axis=0).max() > 0.0

        task, config = load_run_config(run)
        assert task == "sim_pick_cube_fci" and type(config) is RigExperimentConfig
        assert config.env.launch_sim and config.env.object_pose
        with Watch(tmp) as evaluation:
            evaluated = run_cli(["eval", str(run), "--episodes", "1", "--no-video"], env, 60)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        assert "/1 (" in evaluated.stdout, evaluated.stdout
        assert evaluation.seen == set(RIG_MODULES), evaluation.seen  # it evaluated on the rig
    finally:
        deadline = time.monotonic() + 10
        while processes_under(tmp) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_under(tmp)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert not left, left
