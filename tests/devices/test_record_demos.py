"""`serl record-demos`: successful episodes only, appended to a folder, operator marks and
aborts honoured, and a real Ctrl+C (SIGINT to the subprocess) never leaves a damaged or
half-written file."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import experiments
from serl.commands.record_demos import record
from serl.commands.runtime import build_env, transition_spec
from serl.data.demos import load_demos
from serl.devices import DeviceConfig, DeviceState
from serl.devices.replay import save_stream

ROOT = Path(__file__).resolve().parents[2]


def config(**device):
    base = experiments.load("sim_pick_cube_state")
    return dataclasses.replace(base, device=dataclasses.replace(DeviceConfig(), **device))


def spec():
    env = build_env(config(), operator=False)
    return transition_spec(env)


@pytest.mark.timeout(60)
def test_successes_are_kept_and_a_second_session_appends(tmp_path):
    lines = []
    first = record(config(), tmp_path, 2, out=lines.append)
    second = record(config(), tmp_path, 1, out=lines.append)
    assert len(first) == 2 and len(second) == 1 and "kept 2/2" in lines[1]
    episodes, problems = load_demos(tmp_path, spec())
    assert problems == [] and sorted(episodes) == sorted(p.stem for p in first + second)
    ids = sorted(int(b["episode_id"][0]) for b in episodes.values())
    # the appended session continued the ids (and, in simulation, the reset seeds)
    assert ids == [0, 1, 2]
    for batch in episodes.values():
        assert batch["rewards"][-1] == 1.0 and batch["dones"][-1] and not batch["dones"][:-1].any()
        assert batch["intervened"].all()  # the scripted operator drove every step
        np.testing.assert_array_equal(batch["step"], np.arange(len(batch["step"])))


@pytest.mark.timeout(60)
def test_operator_marks_decide_what_is_kept(tmp_path):
    still = np.zeros(7, np.float32)
    states = [DeviceState(still, (), True),
              DeviceState(still, ("mark_success",), True),  # kept: operator's call
              DeviceState(still, (), True), DeviceState(still, ("abort",), True),  # dropped
              DeviceState(still, (), True), DeviceState(still, ("mark_failure",), True)]  # dropped
    stream = save_stream(tmp_path / "operator.npz", states, [0.0] * len(states))
    lines = []
    saved = record(config(kind="replay", replay_path=str(stream)), tmp_path / "demos", 3,
                   max_attempts=3, out=lines.append)
    assert len(saved) == 1
    assert ["kept" in line.split("last ")[1] for line in lines] == [True, False, False]
    episodes, _ = load_demos(tmp_path / "demos", spec())
    (batch,) = episodes.values()
    assert len(batch["rewards"]) == 2 and batch["rewards"][-1] == 1.0 and batch["masks"][-1] == 0.0


@pytest.mark.timeout(90)
def test_ctrl_c_leaves_only_whole_files(tmp_path):
    out = tmp_path / "demos"
    cmd = [sys.executable, "-m", "serl.cli", "record-demos", "sim_pick_cube_state", "--n",
           "100000", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while (len(list(out.glob("*.npz"))) < 3 and time.monotonic() < deadline
               and proc.poll() is None):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    files = sorted(out.glob("*.npz"))
    assert len(files) >= 3 and f"saved {len(files)} demonstrations" in output
    assert not [p for p in out.iterdir() if p.suffix != ".npz"]  # no temporary file left behind
    episodes, problems = load_demos(out, spec())
    assert problems == [] and len(episodes) == len(files)


@pytest.mark.timeout(90)
def test_a_person_at_the_terminal_keyboard(tmp_path):
    import termios

    out = tmp_path / "demos"
    master, slave = os.openpty()
    cmd = [sys.executable, "-m", "serl.cli", "record-demos", "sim_pick_cube_state", "--device",
           "keyboard", "--n", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = [proc.stdout.readline()]
        while "keyboard teleop" not in lines[-1] and proc.poll() is None:
            lines.append(proc.stdout.readline())
        # the env is built and stepping (episodes without the operator time out, unkept)
        time.sleep(0.5)
        os.write(master, b"w1")  # push forward and mark success, between two reads
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "saved 1 demonstrations" in output, "".join(lines) + output
        assert termios.tcgetattr(slave)[3] & termios.ICANON  # the terminal was given back
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
    (batch,) = load_demos(out, spec())[0].values()
    assert batch["intervened"][-1] and batch["actions"][-1][0] > 0.4 and batch["rewards"][-1] == 1.0
    assert not batch["intervened"][:-1].any()  # until then the robot held, nobody acting
