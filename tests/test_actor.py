"""The actor loop against a real learner loop over the in-process transport, on the simulated
arm."""

import threading
import time

import gymnasium as gym
import numpy as np
import pytest

import serl  # noqa: F401
from serl.actor.config import ActorConfig
from serl.actor.loop import Actor
from serl.agents.config import SACConfig
from serl.devices import ScriptedOperator, ScriptedOperatorConfig
from serl.envs.stack import PolicyEnvConfig, make_policy_env
from serl.learner.config import LearnerConfig
from serl.learner.loop import Learner
from serl.transport.inprocess import InProcessTransport

AGENT = SACConfig(hidden_dims=(32, 32), batch_size=32, grasp_critic=True)


def policy_env(takeover=0.1):
    raw = gym.make("serl/PandaPickCube-v0", image_obs=False, max_episode_steps=25)
    operator = ScriptedOperator(
        raw, ScriptedOperatorConfig(takeover_prob=takeover, takeover_steps=5), seed=1
    )
    return make_policy_env(raw, PolicyEnvConfig(), device=operator)


@pytest.mark.timeout(180)
def test_actor_and_learner_train_together(tmp_path):
    transport = InProcessTransport(max_batch=16)
    env = policy_env()
    learner = Learner(
        AGENT,
        LearnerConfig(
            min_online=50, min_demo=10, publish_every=5, max_updates=40, buffer_chunk_size=64
        ),
        env.observation_space,
        env.action_space,
        tmp_path / "run",
        transport.transition_source(),
        transport.publisher(),
    )
    stop = threading.Event()
    actor = Actor(
        env,
        AGENT,
        ActorConfig(
            actor_id="a1",
            max_env_steps=400,
            max_steps_per_update=5,
            free_steps=60,
            eval_every_episodes=4,
            eval_episodes=1,
        ),
        transport.adder("a1"),
        transport.variable_client(),
        transport.stats_sink("a1"),
        state_dir=tmp_path / "actor",
    )
    thread = threading.Thread(target=actor.run, args=(stop,))
    thread.start()
    counters = learner.run(threading.Event())
    # 40 tiny updates can end before the actor's first evaluation (after 4 episodes, 100 steps):
    # the actor goes on within its rate limit until an evaluation has reached the learner
    deadline = time.monotonic() + 30
    while not learner.monitor.history.evals and time.monotonic() < deadline:
        learner.observe_actors()
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert counters.updates == 40
    # The rate limit held the actor to about 5 steps per update beyond its free steps.
    assert actor.counters.env_steps <= 60 + 5 * 40 + 25
    assert actor.counters.weights.step > 0  # it took new weights while acting
    while learner.ingest(timeout=0.2):
        pass
    assert len(learner.online) == actor.counters.env_steps
    assert learner.demo.size > 0
    versions = learner.online.get(np.arange(len(learner.online)))["policy_version"]
    # Provenance: the weights each step was taken with, monotone, ending with the newest the actor
    # had.
    assert np.all(np.diff(versions[:, 1]) >= 0) and versions[-1, 1] <= actor.counters.weights.step
    assert len(np.unique(versions[:, 1])) > 2
    episodes = learner.online.get(np.arange(len(learner.online)))["episode_id"]
    assert np.all(np.diff(episodes) >= 0) and episodes[-1] == actor.counters.episodes - 1
    # Evaluations (no interventions, nothing stored) reached the learner's monitor and its curve.
    learner.observe_actors()
    assert learner.monitor.history.evals and (tmp_path / "run" / "curve.png").exists()
    assert len(learner.monitor.history.train) == actor.counters.episodes
    learner.close()


@pytest.mark.timeout(60)
def test_episode_ids_never_repeat_across_restarts(tmp_path):
    transport = InProcessTransport()
    from serl.transport import WeightsVersion

    transport.publisher().publish(WeightsVersion(0, 0), _policy_params())
    ids = []
    for _ in range(2):  # the second actor is a restart with the same id and state folder
        actor = Actor(
            policy_env(0.0),
            AGENT,
            ActorConfig(actor_id="a1"),
            transport.adder("a1"),
            transport.variable_client(),
            transport.stats_sink("a1"),
            state_dir=tmp_path,
        )
        actor.wait_for_weights()
        ids.append(actor.run_episode(threading.Event())["episode_id"])
    assert ids == [0, 1]


def _policy_params():
    from serl.agents.factory import policy_params_template

    return policy_params_template(AGENT, policy_env().observation_space, 7, seed=0)


@pytest.mark.timeout(60)
def test_operator_schedule_survives_a_restart(tmp_path):
    from serl.transport import WeightsVersion

    transport = InProcessTransport()
    transport.publisher().publish(WeightsVersion(0, 0), _policy_params())
    first = Actor(
        policy_env(0.5),
        AGENT,
        ActorConfig(actor_id="a1", eval_episodes=1),
        transport.adder("a1"),
        transport.variable_client(),
        transport.stats_sink("a1"),
        state_dir=tmp_path,
    )
    first.wait_for_weights()
    first.set_takeover_scale(0.25)  # as after an evaluation at 75% success
    first.run_episode(threading.Event())  # claiming the episode records the state
    env = policy_env(0.5)
    Actor(
        env,
        AGENT,
        ActorConfig(actor_id="a1"),
        transport.adder("a1"),
        transport.variable_client(),
        transport.stats_sink("a1"),
        state_dir=tmp_path,
    )
    assert env.controls.takeover_scale() == 0.25


@pytest.mark.timeout(60)
def test_each_evaluation_writes_a_video_of_its_first_episode_even_from_state(tmp_path):
    import imageio

    from serl.transport import WeightsVersion

    transport = InProcessTransport()
    transport.publisher().publish(WeightsVersion(0, 0), _policy_params())
    actor = Actor(
        policy_env(0.0),
        AGENT,
        ActorConfig(actor_id="a1", eval_episodes=2),
        transport.adder("a1"),
        transport.variable_client(),
        transport.stats_sink("a1"),
        state_dir=tmp_path / "actor",
        video_dir=tmp_path / "videos",
    )
    actor.wait_for_weights()
    report = actor.run_evaluation(threading.Event())
    videos = sorted((tmp_path / "videos").glob("eval_*.mp4"))
    assert [v.name for v in videos] == ["eval_00000000.mp4"] and report["eval_episodes"] == 2
    frames = imageio.v3.imread(videos[0])
    assert (
        frames.shape[0] >= 2 and frames.shape[2] == 2 * frames.shape[1]
    )  # two cameras side by side


def test_episode_ids_are_claimed_in_a_durable_file_before_use(tmp_path):
    from serl.actor.counters import CounterFile

    path = tmp_path / "actor" / "a1.json"
    counters = CounterFile(path).load()
    assert [CounterFile(path).claim_episode(counters) for _ in range(2)] == [0, 1]
    assert CounterFile(path).load().episodes == 2
    assert [p.name for p in path.parent.iterdir()] == ["a1.json"]  # no temporary left behind


def test_an_actor_over_a_bare_env_has_nothing_to_control(tmp_path):
    raw = gym.make("serl/PandaPickCube-v0", image_obs=False, max_episode_steps=5)
    transport = InProcessTransport()
    actor = Actor(raw, AGENT, ActorConfig(actor_id="a1"), transport.adder("a1"),
                  transport.variable_client(), transport.stats_sink("a1"), state_dir=tmp_path)
    assert not actor.controls.has_interventions and not actor.controls.has_classifier
    actor.set_takeover_scale(0.5)  # no operator device: nothing to scale, nothing recorded
    assert actor.counters.takeover_scale == 1.0
    raw.close()
