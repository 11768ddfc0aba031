"""Recorded device streams: an episode driven by the scripted operator, recorded and replayed into a
fresh env, moves the arm exactly the same way; broken files are refused by name."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import serl  # noqa: F401
from serl.devices import ScriptedOperator, ScriptedOperatorConfig
from serl.devices.base import DeviceState
from serl.devices.replay import DeviceRecorder, Replay, load_stream, save_stream
from serl.envs.stack import PolicyEnvConfig, make_policy_env


def episode(device, raw, steps=30):
    env = make_policy_env(raw, PolicyEnvConfig(), device=device)
    env.reset(seed=7)
    poses, intervened = [], []
    for _ in range(steps):
        _, _, _, _, info = env.step(np.zeros(7, np.float32))
        poses.append(np.concatenate(raw.unwrapped.sim.tcp_pose()))
        intervened.append(info["intervened"])
    return np.array(poses), intervened


@pytest.mark.timeout(30)
def test_a_recorded_stream_replays_the_same_motion(tmp_path):
    raw = gym.make("serl/PandaPickCube-v0", image_obs=False)
    operator = ScriptedOperator(
        raw, ScriptedOperatorConfig(takeover_prob=0.3, takeover_steps=4, noise_std=0.2), 3)
    recorder = DeviceRecorder(operator, tmp_path / "stream.npz")
    poses, intervened = episode(recorder, raw)
    recorder.close()
    assert any(intervened) and not all(intervened)  # both the operator and the (zero) policy acted

    replay = Replay(tmp_path / "stream.npz")
    replayed, replay_intervened = episode(replay,
                                          gym.make("serl/PandaPickCube-v0", image_obs=False))
    assert replay.finished and replay_intervened == intervened
    np.testing.assert_array_equal(replayed, poses)
    assert not replay.read().active  # idle after the end


@pytest.mark.timeout(10)
def test_states_round_trip_exactly_and_bad_files_are_named(tmp_path):
    states = [DeviceState(np.float32([0.1, -1, 0, 0, 0, 0.5, -1]), ("pause", "abort"), True),
              DeviceState(np.zeros(7, np.float32))]
    path = save_stream(tmp_path / "s.npz", states, [5.0, 5.1])
    loaded = load_stream(path)
    assert [(s.buttons, s.active) for s in loaded] == [(("pause", "abort"), True), ((), False)]
    np.testing.assert_array_equal(np.stack([s.action for s in loaded]),
                                  np.stack([s.action for s in states]))
    assert not list(tmp_path.glob("*.tmp"))

    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="s.npz: not a readable device stream"):
        Replay(path)
    bad = DeviceState(np.float32([2, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"bad.npz: actions must be finite and within \[-1, 1\]"):
        load_stream(save_stream(tmp_path / "bad.npz", [bad], [0.0]))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz: not a device stream"):
        load_stream(tmp_path / "other.npz")
