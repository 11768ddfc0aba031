"""The reward wrappers on the simulated arm: a classifier folder's newer version is picked up
between episodes and recorded on every transition; the state predicate gates success; frames called
success are kept for review; the operator's mark_success / mark_failure give the reward."""

import threading

import numpy as np
import pytest
from reward_helpers import ALWAYS, NEVER, raw_env, save_fixed, zero_action

from serl.actor.config import ActorConfig
from serl.actor.loop import Actor
from serl.agents.config import SACConfig
from serl.agents.factory import example_observation, make_agent
from serl.devices.base import DeviceState
from serl.envs.observation import flat_state_layout
from serl.envs.reward_wrappers import RewardClassifierWrapper
from serl.envs.stack import PolicyEnvConfig, make_policy_env
from serl.reward.positives import load_positives
from serl.reward.predicates import StatePredicate
from serl.reward.store import ClassifierFolder
from serl.transport.fakes import RecordingAdder, RecordingStatsSink, ScriptedVariableClient
from serl.transport.interfaces import WeightsVersion

# state-only policy: the classifier alone looks at pixels
AGENT = SACConfig(hidden_dims=(8,), batch_size=8)


@pytest.mark.timeout(120)
def test_the_actor_picks_up_a_new_classifier_version_between_episodes(tmp_path):
    folder = tmp_path / "classifiers"
    save_fixed(folder, NEVER)
    env = make_policy_env(raw_env(steps=4), PolicyEnvConfig(), classifier=ClassifierFolder(folder))
    params = make_agent(AGENT, example_observation(env.observation_space), 7, 0).policy_params()
    adder = RecordingAdder()
    actor = Actor(env, AGENT, ActorConfig(eval_every_episodes=0), adder,
                  ScriptedVariableClient((WeightsVersion(0, 1), params)), RecordingStatsSink(),
                  state_dir=tmp_path / "run" / "actor")
    actor.wait_for_weights()
    stop = threading.Event()
    first = actor.run_episode(stop)
    # v1 never reaches its threshold: truncated
    assert first["length"] == 4 and first["return"] == 0.0
    save_fixed(folder, ALWAYS, seed=1)  # appears between episodes
    second = actor.run_episode(stop)
    assert second["length"] == 1 and second["return"] == 1.0  # v2 ends the episode at once
    versions = [int(t["classifier_version"]) for t in adder.transitions]
    assert versions == [1, 1, 1, 1, 2]
    assert bool(adder.transitions[-1]["dones"]) and adder.transitions[-1]["masks"] == 0.0
    # The frame v2 called success is kept in the run folder for review,
    # with the simulator's verdict.
    kept, problems = load_positives(tmp_path / "run" / "classifier_positives")
    assert not problems and len(kept) == 1
    assert kept[0].version == 2 and kept[0].sim_succeed == 0
    np.testing.assert_array_equal(kept[0].frame["front"],
                                  adder.transitions[-1]["next_observations"]["front"])
    env.close()


@pytest.mark.timeout(60)
def test_a_new_version_never_changes_the_judge_mid_episode(tmp_path):
    save_fixed(tmp_path, NEVER)
    env = make_policy_env(raw_env(steps=5), PolicyEnvConfig(),
                          classifier=ClassifierFolder(tmp_path))
    _, info = env.reset(seed=0)
    assert info["classifier_version"] == 1
    env.step(zero_action())
    save_fixed(tmp_path, ALWAYS, seed=1)
    _, reward, terminated, _, info = env.step(zero_action())
    assert reward == 0.0 and not terminated and info["classifier_version"] == 1
    # a broken newer version (no files): the wrapper keeps judging with v2
    (tmp_path / "v0003").mkdir()
    env.reset(seed=1)
    (tmp_path / "v0003").rmdir()
    _, info = env.reset(seed=1)
    _, reward, terminated, _, info = env.step(zero_action())
    assert reward == 1.0 and terminated and info["classifier_version"] == 2
    env.close()


@pytest.mark.timeout(60)
def test_success_needs_the_versions_confirm_steps_in_a_row(tmp_path):
    save_fixed(tmp_path, ALWAYS, confirm_steps=3)
    env = make_policy_env(raw_env(steps=10), PolicyEnvConfig(),
                          classifier=ClassifierFolder(tmp_path))
    for _ in range(2):  # the count starts again in each episode
        env.reset(seed=0)
        results = [env.step(zero_action())[1:3] for _ in range(3)]
        assert results == [(0.0, False), (0.0, False), (1.0, True)]
    env.close()


@pytest.mark.timeout(60)
def test_the_state_predicate_gates_the_classifier(tmp_path):
    save_fixed(tmp_path, ALWAYS)
    env = make_policy_env(raw_env(steps=30), PolicyEnvConfig(),
                          classifier=ClassifierFolder(tmp_path),
                          predicate=StatePredicate("gripper_closed", gripper_closed_below=0.5))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(zero_action())  # gripper open at reset
    assert reward == 0.0 and not terminated and info["classifier_prob"] >= 0.0
    close = np.array([0, 0, 0, 0, 0, 0, -1], np.float32)
    rewards = []
    for _ in range(20):
        _, reward, terminated, _, _ = env.step(close)
        rewards.append(reward)
        if terminated:
            break
    assert rewards[-1] == 1.0 and terminated and rewards.count(1.0) == 1
    env.close()


class Buttons:
    """An operator who presses the given controls at given steps (an `InterventionDevice`; a person
    in reality)."""

    def __init__(self, presses: dict[int, tuple[str, ...]]):
        self.presses, self.reads = presses, 0

    def read(self) -> DeviceState:
        self.reads += 1
        return DeviceState(action=np.zeros(7, np.float32), buttons=self.presses.get(self.reads, ()))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("button,reward", [("mark_success", 1.0), ("mark_failure", 0.0)])
def test_the_operator_gives_the_reward_with_a_button(button, reward):
    env = make_policy_env(raw_env(steps=10, image_obs=False), PolicyEnvConfig(),
                          device=Buttons({3: (button,)}), human_reward=True)
    env.reset(seed=0)
    results = [env.step(zero_action()) for _ in range(3)]
    assert [r[1] for r in results] == [0.0, 0.0, reward]
    assert [r[2] for r in results] == [False, False, True]
    assert results[-1][4]["operator_label"] == button.removeprefix("mark_")
    env.close()


@pytest.mark.timeout(60)
def test_a_success_button_held_through_a_reset_does_not_end_the_next_episode():
    # pressed at step 3 and held on into the next episode
    held = {i: ("mark_success",) for i in range(3, 8)}
    env = make_policy_env(raw_env(steps=10, image_obs=False), PolicyEnvConfig(),
                          device=Buttons(held), human_reward=True)
    env.reset(seed=0)
    first = [env.step(zero_action()) for _ in range(3)]
    assert first[-1][1] == 1.0 and first[-1][2]
    env.reset(seed=1)
    # the button is still down on all three steps
    second = [env.step(zero_action()) for _ in range(3)]
    assert [r[1] for r in second] == [0.0, 0.0, 0.0] and not any(r[2] for r in second)
    env.close()


def test_the_predicate_reads_the_flattened_state_and_needs_it():
    env = make_policy_env(raw_env(image_obs=False), PolicyEnvConfig())
    # after tcp_pose (xyz + euler) and tcp_vel
    assert flat_state_layout(env)["gripper_pose"] == slice(12, 13)
    with pytest.raises(ValueError, match="no FlattenWrapper"):
        RewardClassifierWrapper(raw_env(image_obs=False), lambda obs: 1.0,
                                predicate=StatePredicate("gripper_closed"))
    env.close()
