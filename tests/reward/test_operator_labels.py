"""Labels on a real rig, on the simulated arm: the operator's held "mark_success" labels the steps
it is held (a recorded device stream stands in for the person), and an env without a success signal
(as a real rig reports it) never turns a classifier's positives into hard negatives."""

import gymnasium as gym
import numpy as np
import pytest
from reward_helpers import ALWAYS, SMALL, raw_env, save_fixed, zero_action

from serl.cli import main as serl
from serl.devices.base import DeviceState
from serl.devices.replay import save_stream
from serl.envs.stack import PolicyEnvConfig, make_policy_env
from serl.reward.labels import load_label_file
from serl.reward.positives import UNKNOWN, load_positives
from serl.reward.store import ClassifierFolder

MS = ("mark_success",)


def stream(path, buttons):
    states = [DeviceState(np.zeros(7, np.float32), b) for b in buttons]
    return save_stream(path, states, [0.1 * i for i in range(len(states))])


@pytest.mark.timeout(60)
def test_operator_labels_are_the_steps_the_success_mark_is_held(tmp_path):
    # Two 8-step episodes. Episode 1: held over steps 3-5 and again at its last step, still held
    # into episode 2 (which must not count it), released at its step 3, pressed again at step 5.
    first = [(), (), MS, MS, MS, (), (), MS]
    second = [MS, MS, (), (), MS, (), (), ()]
    path = stream(tmp_path / "operator.npz", first + second)
    out = tmp_path / "labels"
    assert serl(["record-labels", "sim_pick_cube", "--label-from", "operator", "--device.kind",
                 "replay", "--device.replay-path", str(path), "--env.max-episode-steps", "8",
                 "--out", str(out), *SMALL, "--reward.labels.positives", "5",
                 "--reward.labels.negatives", "11",
                 "--reward.labels.negative-stride", "1"]) == 0
    (saved,) = out.glob("*.npz")
    labels = load_label_file(saved)
    F, T = False, True
    assert labels.labels.tolist() == [F, F, T, T, T, F, F, T] + [F, F, F, F, T, F, F, F]
    # the marks ended no episode: the time limit did
    assert labels.episodes.tolist() == [0] * 8 + [1] * 8


@pytest.mark.timeout(30)
def test_operator_labels_need_a_device_with_a_success_mark(tmp_path, capsys):
    with pytest.raises(SystemExit, match="cannot produce mark_success"):
        serl(["record-labels", "sim_pick_cube", "--label-from", "operator", "--out", str(tmp_path),
              *SMALL])
    assert not list(tmp_path.glob("*.npz"))


class NoSuccessSignal(gym.Wrapper):
    """The simulated arm reporting success the way `FrankaEnv` does on a real rig: `succeed`
    False, not known."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info.update(succeed=False, succeed_known=False)
        return obs, reward, terminated, truncated, info


@pytest.mark.timeout(60)
def test_positives_without_a_success_signal_are_unknown_and_never_marked_by_it(tmp_path):
    run = tmp_path / "run"
    save_fixed(tmp_path / "always", ALWAYS)
    env = make_policy_env(NoSuccessSignal(raw_env(steps=3)), PolicyEnvConfig(),
                          classifier=ClassifierFolder(tmp_path / "always"))
    assert env.controls.set_positives_dir(run / "classifier_positives")
    for seed in range(2):
        env.reset(seed=seed)
        env.step(zero_action())  # called success at once: kept for review
    env.close()
    kept, problems = load_positives(run / "classifier_positives")
    assert not problems and [p.sim_succeed for p in kept] == [UNKNOWN, UNKNOWN]
    with pytest.raises(SystemExit, match="2 of the 2 frames .* do not have"):
        serl(["record-labels", "sim_pick_cube", "--from-run", str(run), "--mark", "sim", "--out",
              str(tmp_path / "labels"), *SMALL])
    # refused before anything was reviewed
    assert len(load_positives(run / "classifier_positives")[0]) == 2
    assert not (tmp_path / "labels").exists()


class RealRigServer:
    """A robot server's state reply as a real rig sends it (no success signal), for
    `FrankaEnv` to read."""

    def get_state(self):
        zeros = np.zeros(3)
        return {"tcp_pose": np.array([0.5, 0, 0.3, 1, 0, 0, 0.0]), "tcp_vel": np.zeros(6),
                "tcp_force": zeros, "tcp_torque": zeros, "gripper_pos": 1.0, "stamp": 0.0,
                "succeed": None, "mode": "ok"}


def test_a_real_rig_reports_that_it_has_no_success_signal():
    from serl.envs.franka_config import FrankaEnvConfig
    from serl.envs.franka_env import FrankaEnv

    env = FrankaEnv(FrankaEnvConfig(image_obs=False))
    env.client = RealRigServer()
    _, info = env._observe()
    assert info["succeed"] is False and info["succeed_known"] is False
    # the simulated driver's reply
    env.client.get_state = lambda: {**RealRigServer().get_state(), "succeed": True}
    _, info = env._observe()
    assert info["succeed"] is True and "succeed_known" not in info
