"""Intervention behaviour on the real simulated arm: the hold that stops control flickering, and the
operator controls (abort, marks, pause, reset confirmation) as episode outcomes."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest

import serl  # noqa: F401  (registers the env ids)
from serl.devices.base import DeviceState
from serl.envs.contract import check_info
from serl.envs.intervention import InterventionWrapper
from serl.envs.stack import PolicyEnvConfig, make_policy_env

UP = np.array([0, 0, 1, 0, 0, 0, 0], np.float32)  # base +z


class ScriptDevice:
    """One scripted state per read (then idle): lists of buttons and whether the
    operator is active."""

    def __init__(self, buttons=(), active=(), action=UP):
        self.buttons, self.active, self.action, self.reads = list(buttons), list(active), action, 0

    def read(self) -> DeviceState:
        i, self.reads = self.reads, self.reads + 1
        buttons = tuple(self.buttons[i]) if i < len(self.buttons) else ()
        active = bool(self.active[i]) if i < len(self.active) else False
        return DeviceState(action=self.action, buttons=buttons, active=active)


def sim_env(device, **cfg):
    raw = gym.make("serl/PandaPickCube-v0", image_obs=False, max_episode_steps=50)
    return make_policy_env(raw, PolicyEnvConfig(relative_frame=False, operator_poll_s=0.001, **cfg),
                           device=device)


def run(env, steps):
    """`steps` steps from a reset; every info is checked against the env contract."""
    check_info(env.reset(seed=0)[1])
    out = [env.step(np.zeros(7, np.float32)) for _ in range(steps)]
    for *_, info in out:
        check_info(info)
    return out


@pytest.mark.timeout(30)
def test_hold_keeps_control_for_n_steps_after_the_device_goes_idle():
    active = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    out = run(sim_env(ScriptDevice(active=active), intervention_hold_steps=2), len(active))
    intervened = [info["intervened"] for *_, info in out]
    # Active at 1 and 5, each followed by two held steps: one continuous take-over, no flicker.
    assert intervened == [False, True, True, True, False, True, True, True, False, False]
    # Held steps execute (and record) the device's action, not the policy's zero action.
    assert all(np.array_equal(info["intervene_action"], UP)
               for *_, info in out if info["intervened"])
    no_hold = run(sim_env(ScriptDevice(active=active)), len(active))
    assert [info["intervened"] for *_, info in no_hold] == [bool(a) for a in active]


@pytest.mark.timeout(30)
def test_abort_truncates_once_per_press():
    # "abort" held over reads 2..4: one press, one truncation;
    # still held after the reset, it does nothing more.
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
    env = sim_env(ScriptDevice(buttons=[(), (mark,)]))
    *_, (_, reward, terminated, truncated, info) = run(env, 2)
    assert info["succeed"] is succeed and info["marked"] == mark.split("_")[1]
    expected = (True, False, 1.0) if succeed else (False, True, 0.0)
    assert (terminated, truncated, reward) == expected


@pytest.mark.timeout(30)
def test_abort_wins_over_a_success_mark():
    env = sim_env(ScriptDevice(buttons=[("mark_success", "abort")]))
    *_, (_, _, terminated, truncated, info) = run(env, 1)
    assert truncated and not terminated and info["aborted"] and "marked" not in info


@pytest.mark.timeout(30)
def test_pause_holds_the_arm_until_pressed_again():
    # Read 1 presses pause; reads 2..40 wait (released, nothing);
    # read 41 presses pause again and resumes.
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
    # Nothing was sent to the arm while paused:
    # the paused step advanced the simulation by one step only.
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
    assert env.controls.set_operator_stop(stop)
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
    assert env.controls.set_interventions(False)
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


@pytest.mark.timeout(30)
def test_abort_sends_nothing_to_the_arm():
    env = sim_env(ScriptDevice(buttons=[(), ("abort",)]))
    env.reset(seed=0)
    obs, *_ = env.step(np.zeros(7, np.float32))
    t = env.unwrapped.sim.data.time
    aborted, reward, terminated, truncated, info = env.step(
        np.array([0, 0, 1, 0, 0, 0, 1], np.float32))
    assert env.unwrapped.sim.data.time == t  # the policy's action was not executed
    assert truncated and not terminated and reward == 0.0
    assert info["aborted"] and not info["executed"]
    assert not info["succeed"] and not info["intervened"]
    assert all(np.array_equal(aborted[k], obs[k]) for k in obs)  # where the episode stood
    env.reset(seed=1)
    assert env.step(np.zeros(7, np.float32))[4]["executed"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("operator", [False, True])
def test_the_policys_action_from_before_a_pause_is_never_sent(operator):
    # Pause at the first step's read, pressed again at the third read: the step resumes with a hold,
    # or with the operator's action when they act at that moment.
    device = ScriptDevice(buttons=[("pause",), (), ("pause",)], active=[0, 0, int(operator)])
    env = sim_env(device)
    obs, _ = env.reset(seed=0)
    # down and close: what the policy chose before the pause
    stale = np.array([0, 0, -1, 0, 0, 0, -1], np.float32)
    after, _, _, _, info = env.step(stale)
    assert info["paused_s"] > 0 and info["executed"]
    dz = after["state"][2] - obs["state"][2]  # tcp z (base frame: relative_frame is off)
    if operator:  # the operator's action, read after the pause
        assert info["intervened"] and np.array_equal(info["intervene_action"], UP) and dz > 0.002
        assert "executed_action" not in info
    else:  # a hold: the arm stays, and the hold is what gets recorded
        assert not info["intervened"] and "intervene_action" not in info and abs(dz) < 0.001
        assert np.array_equal(info["executed_action"], np.zeros(7, np.float32))
    # The next step is the policy's again.
    _, _, _, _, info = env.step(stale)
    assert "executed_action" not in info and not info["intervened"]


class ListAdder:
    def __init__(self):
        self.added = []

    def add(self, transition):
        self.added.append(transition)

    def flush(self, timeout=None):
        return True


class ListStats:
    def __init__(self):
        self.episodes = []

    def episode(self, stats):
        self.episodes.append(stats)


@pytest.mark.timeout(60)
def test_the_actor_records_no_transition_for_an_aborted_step(tmp_path):
    from serl.actor.config import ActorConfig
    from serl.actor.loop import Actor
    from serl.agents.config import SACConfig
    from serl.transport.inprocess import InProcessTransport

    # Read 0 (the first step's) starts a pause and read 2 ends it (a hold);
    # reads 3, 4 are the policy's; 5 aborts.
    env = sim_env(ScriptDevice(buttons=[("pause",), (), ("pause",), (), (), ("abort",)]))
    adder, stats = ListAdder(), ListStats()
    actor = Actor(env, SACConfig(hidden_dims=(8,)), ActorConfig(actor_id="a"), adder,
                  InProcessTransport().variable_client(), stats, state_dir=tmp_path)
    policy = np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32)
    actor.act = lambda obs: policy  # the policy's choice; no network needed to see what is recorded
    summary = actor.run_episode(threading.Event())
    # steps 0..2; the aborted one moved nothing
    assert len(adder.added) == 3 and actor.counters.env_steps == 3
    # the hold after the pause
    assert np.array_equal(adder.added[0]["actions"], np.zeros(7, np.float32))
    assert np.allclose(adder.added[1]["actions"], policy) and not adder.added[-1]["dones"]
    assert summary["aborted"] == 1.0 and summary["length"] == 3 and summary["paused_s"] > 0


@pytest.mark.timeout(30)
def test_a_device_that_cannot_confirm_a_reset_is_refused_rather_than_waited_on():
    class TwoButtons(ScriptDevice):
        controls = frozenset()  # declares it has no operator controls (a SpaceMouse's close/open)

    with pytest.raises(ValueError, match="TwoButtons cannot produce confirm_reset"):
        sim_env(TwoButtons(), confirm_reset=True)
    sim_env(TwoButtons(), confirm_reset=False).reset(seed=0)


MS = ("mark_success",)


@pytest.mark.timeout(30)
def test_in_label_mode_a_held_success_mark_labels_steps_and_ends_nothing():
    # mark_success held over reads 2..4 (a person holding the button), then mark_failure at read 7.
    buttons = [(), (), MS, MS, MS, (), (), ("mark_failure",)]
    out = run(sim_env(ScriptDevice(buttons=buttons), marks_end_episode=False), len(buttons))
    assert ["mark_success" in info["held"] for *_, info in out] == [False, False, True, True, True,
                                                                     False, False, False]
    # the mark ends nothing
    assert not any(terminated or truncated for _, _, terminated, truncated, _ in out[:-1])
    assert all(reward == 0.0 and not info["succeed"] and "marked" not in info
               for _, reward, *_, info in out[:-1])
    _, _, terminated, truncated, info = out[-1]
    # mark_failure still ends the episode
    assert truncated and not terminated and info["marked"] == "failure"
    # Outside label mode the same hold ends the episode at its first step, as a success.
    out = run(sim_env(ScriptDevice(buttons=buttons)), 3)
    assert out[2][2] and out[2][4]["marked"] == "success"


@pytest.mark.timeout(30)
def test_a_mark_held_through_the_reset_counts_again_only_after_a_release():
    # Episode 1: reads 0..3, the mark pressed at 2 and held; episode 2: still held at reads 4, 5,
    # released at 6, pressed again at 7.
    device = ScriptDevice(buttons=[(), (), MS, MS, MS, MS, (), MS])
    env = sim_env(device, marks_end_episode=False)
    first = run(env, 4)
    assert ["mark_success" in info["held"] for *_, info in first] == [False, False, True, True]
    second = run(env, 4)
    assert ["mark_success" in info["held"] for *_, info in second] == [False, False, False, True]
    # the device's own state still shows the held button
    assert "mark_success" in second[0][4]["buttons"]


@pytest.mark.timeout(30)
def test_a_press_during_the_reset_confirmation_does_not_label_the_episode():
    device = ScriptDevice(buttons=[MS, ("confirm_reset",) + MS, MS, ()])
    env = sim_env(device, marks_end_episode=False, confirm_reset=True)
    out = run(env, 3)
    assert device.reads == 5 and not any(info["held"] for *_, info in out)


@pytest.mark.timeout(30)
def test_an_aborted_step_has_no_success_signal():
    *_, (_, _, _, truncated, info) = run(sim_env(ScriptDevice(buttons=[(), ("abort",)])), 2)
    assert truncated and info["succeed_known"] is False and info["held"] == ("abort",)
    *_, (_, _, _, _, info) = run(sim_env(ScriptDevice()), 1)
    assert "succeed_known" not in info  # the simulator's flag is known
