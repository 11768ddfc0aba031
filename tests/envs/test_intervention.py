"""Intervention behaviour on the real simulated arm: the hold that stops control flickering, and the operator
controls (abort, marks, pause, reset confirmation) as episode outcomes."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest

import serl  # noqa: F401  (registers the env ids)
from serl.devices.base import DeviceState
from serl.envs.wrappers import InterventionWrapper, PolicyEnvConfig, make_policy_env

UP = np.array([0, 0, 1, 0, 0, 0, 0], np.float32)  # base +z


class ScriptDevice:
    """One scripted state per read (then idle): lists of buttons and whether the operator is active."""

    def __init__(self, buttons=(), active=(), action=UP):
        self.buttons, self.active, self.action, self.reads = list(buttons), list(active), action, 0

    def read(self) -> DeviceState:
        i, self.reads = self.reads, self.reads + 1
        buttons = tuple(self.buttons[i]) if i < len(self.buttons) else ()
        active = bool(self.active[i]) if i < len(self.active) else False
        return DeviceState(action=self.action, buttons=buttons, active=active)


def sim_env(device, **cfg):
    raw = gym.make("serl/PandaPickCube-v0", image_obs=False, max_episode_steps=50)
    return make_policy_env(raw, PolicyEnvConfig(relative_frame=False, operator_poll_s=0.001, **cfg), device=device)


def run(env, steps):
    env.reset(seed=0)
    return [env.step(np.zeros(7, np.float32)) for _ in range(steps)]


@pytest.mark.timeout(30)
def test_hold_keeps_control_for_n_steps_after_the_device_goes_idle():
    active = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    out = run(sim_env(ScriptDevice(active=active), intervention_hold_steps=2), len(active))
    intervened = [info["intervened"] for *_, info in out]
    # Active at 1 and 5, each followed by two held steps: one continuous take-over, no flicker.
    assert intervened == [False, True, True, True, False, True, True, True, False, False]
    # Held steps execute (and record) the device's action, not the policy's zero action.
    assert all(np.array_equal(info["intervene_action"], UP) for *_, info in out if info["intervened"])
    no_hold = run(sim_env(ScriptDevice(active=active)), len(active))
    assert [info["intervened"] for *_, info in no_hold] == [bool(a) for a in active]


@pytest.mark.timeout(30)
def test_abort_truncates_once_per_press():
    # "abort" held over reads 2..4: one press, one truncation; still held after the reset, it does nothing more.
    env = sim_env(ScriptDevice(buttons=[(), (), ("abort",), ("abort",), ("abort",)]))
    out = run(env, 3)
    _, _, terminated, truncated, info = out[2]
    assert truncated and not terminated and info["aborted"]
    assert not any(o[3] for o in out[:2])
    env.reset(seed=1)
    _, _, _, truncated, info = env.step(np.zeros(7, np.float32))
    assert not truncated and "aborted" not in info


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mark, succeed", [("mark_success", True), ("mark_failure", False)])
def test_marks_end_the_episode_with_that_outcome(mark, succeed):
    *_, (_, reward, terminated, truncated, info) = run(sim_env(ScriptDevice(buttons=[(), (mark,)])), 2)
    assert info["succeed"] is succeed and info["marked"] == mark.split("_")[1]
    assert (terminated, truncated, reward) == ((True, False, 1.0) if succeed else (False, True, 0.0))


@pytest.mark.timeout(30)
def test_abort_wins_over_a_success_mark():
    *_, (_, _, terminated, truncated, info) = run(sim_env(ScriptDevice(buttons=[("mark_success", "abort")])), 1)
    assert truncated and not terminated and info["aborted"] and "marked" not in info


@pytest.mark.timeout(30)
def test_pause_holds_the_arm_until_pressed_again():
    # Read 1 presses pause; reads 2..40 wait (released, nothing); read 41 presses pause again and resumes.
    buttons = [(), ("pause",)] + [()] * 39 + [("pause",)]
    device = ScriptDevice(buttons=buttons, active=[1] * 100)
    env = sim_env(device)
    env.reset(seed=0)
    t0 = env.unwrapped.sim.data.time
    env.step(np.zeros(7, np.float32))
    t1, start = env.unwrapped.sim.data.time, time.monotonic()
    _, _, _, _, info = env.step(np.zeros(7, np.float32))
    assert device.reads == 42  # the step waited through the pause, polling the device
    assert 0 < info["paused_s"] <= time.monotonic() - start
    # Nothing was sent to the arm while paused: the paused step advanced the simulation by one step only.
    assert env.unwrapped.sim.data.time - t1 == pytest.approx(t1 - t0)
    _, _, _, _, info = env.step(np.zeros(7, np.float32))
    assert info["paused_s"] == 0.0 and info["intervened"]


@pytest.mark.timeout(30)
def test_a_pause_ends_on_abort_or_shutdown():
    env = sim_env(ScriptDevice(buttons=[("pause",), (), (), ("abort",)]))
    _, _, _, truncated, info = run(env, 1)[0]
    assert truncated and info["aborted"] and info["paused_s"] > 0
    env = sim_env(ScriptDevice(buttons=[("pause",)]))  # never resumed by the operator
    stop = threading.Event()
    env.set_wrapper_attr("operator_stop", stop, force=False)
    threading.Timer(0.2, stop.set).start()
    _, _, _, truncated, info = run(env, 1)[0]
    assert info["paused_s"] >= 0.15 and not truncated


@pytest.mark.timeout(30)
def test_reset_waits_for_the_operators_confirmation_when_asked():
    device = ScriptDevice(buttons=[(), (), ("confirm_reset",)])
    env = sim_env(device, confirm_reset=True)
    _, info = env.reset(seed=0)
    assert device.reads == 3 and info["reset_wait_s"] >= 0
    _, info = sim_env(ScriptDevice(), confirm_reset=False).reset(seed=0)
    assert "reset_wait_s" not in info


@pytest.mark.timeout(30)
def test_evaluation_ignores_motion_but_honours_controls():
    env = sim_env(ScriptDevice(buttons=[(), ("abort",)], active=[1, 1]))
    env.set_wrapper_attr("interventions_enabled", False)
    out = run(env, 2)
    assert not any(info["intervened"] for *_, info in out)
    assert out[1][3] and out[1][4]["aborted"]


@pytest.mark.timeout(30)
def test_closing_the_env_closes_the_device():
    class Closable(ScriptDevice):
        closed = False

        def close(self):
            self.closed = True

    device = Closable()
    env = InterventionWrapper(gym.make("serl/PandaPickCube-v0", image_obs=False), device)
    env.close()
    assert device.closed
