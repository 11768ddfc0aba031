"""Bad data end to end: transitions with NaN or infinity, an action outside [-1, 1] and a
wrong-shaped camera frame, sent by an actor over real ZeroMQ to a real learner loop, are rejected
at insertion, counted and logged; the good transitions around them are stored exactly once, the
actor's spool drains (the watermark moves past the bad ones) and training goes on. A reward
classifier that fails does not stop the actor."""

import logging
import threading

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from transport.transport_helpers import INFO, SPEC, make_actor, transition, wait_until

import serl  # noqa: F401  (registers the envs)
from serl.actor.config import ActorConfig
from serl.actor.loop import Actor
from serl.agents.config import SACConfig
from serl.agents.factory import example_observation, make_agent
from serl.data import TransitionSpec
from serl.envs.stack import make_policy_env
from serl.learner.config import LearnerConfig
from serl.learner.loop import Learner
from serl.transport.codec import TransitionCodec
from serl.transport.frames import FrameCodec
from serl.transport.inprocess import InProcessTransport
from serl.transport.interfaces import WeightsVersion
from serl.transport.zmq_learner import ZmqLearnerTransport

AGENT = SACConfig(hidden_dims=(16, 16), batch_size=16)
OBS_SPACE = spaces.Dict({k: spaces.Box(0, 255, s, np.uint8) if d == np.uint8
                         else spaces.Box(-np.inf, np.inf, s, d)
                         for k, (s, d) in SPEC.observation_spec.items()})
ACTION_SPACE = spaces.Box(-1, 1, (SPEC.action_dim,), np.float32)


def poisoned(i: int, how: str) -> dict:
    t = transition(i)
    if how == "nan":
        t["observations"] = {**t["observations"], "state": np.full(5, np.nan, np.float32)}
    elif how == "inf":
        t["rewards"] = np.float32(np.inf)
    elif how == "action":
        t["actions"] = np.array([0.5, 3.0, -0.2], np.float32)
    return t


def wrong_shaped_frame(i: int) -> bytes:
    """Transition i encoded by a buggy actor whose front camera is 8x8: what it puts on the wire."""
    t = transition(i)
    for top in ("observations", "next_observations"):
        t[top] = {**t[top], "front": np.zeros((8, 8, 3), np.uint8)}
    obs = dict(SPEC.observation_spec, front=((8, 8, 3), np.uint8))
    return TransitionCodec(TransitionSpec(obs, SPEC.action_dim), FrameCodec(None)).encode(t)


@pytest.mark.timeout(120)
def test_bad_transitions_are_rejected_counted_and_logged_and_training_goes_on(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    transport = ZmqLearnerTransport(SPEC, INFO, actor_timeout=1.5)
    learner = Learner(AGENT, LearnerConfig(min_online=20, min_demo=10**6, publish_every=5,
                                           checkpoint_every=10**6),
                      OBS_SPACE, ACTION_SPACE, tmp_path / "run", transport, transport)
    stop = threading.Event()
    thread = threading.Thread(target=learner.run, args=(stop,))
    thread.start()
    actor = make_actor(transport, "a1", tmp_path / "spool")
    try:
        adder = actor.adder()
        for i in range(30):
            adder.add(transition(i))
        assert wait_until(lambda: learner.counters.updates > 0, 60)
        for i, how in zip(range(30, 33), ("nan", "inf", "action"), strict=True):
            # well-formed on the wire: only the learner's intake can judge them
            adder.add(poisoned(i, how))
        with pytest.raises(ValueError, match="front"):
            adder.add(transition(33) | {"observations": {**transition(33)["observations"],
                                                        "front": np.zeros((8, 8, 3), np.uint8)}})
        actor.spool.add(wrong_shaped_frame(33))  # a buggy actor's spool sends it anyway
        for i in range(34, 60):
            adder.add(transition(i))
        assert adder.flush(timeout=30)  # all 60 acknowledged: the bad ones did not stall the actor
        updates = learner.counters.updates
        assert wait_until(lambda: learner.counters.updates > updates + 20, 60)  # training goes on
    finally:
        stop.set()
        thread.join(timeout=60)
        actor.close()
        learner.close()
        transport.close()
    assert not thread.is_alive()
    assert learner.invalid_transitions == 4 and transport.counters()["bad_transitions"] == 1
    with learner_storage(tmp_path) as online:
        stored = sorted(s for _, s in online.origins(np.arange(len(online))))
        assert stored == [*range(30), *range(34, 60)]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for problem in ("observations/state: non-finite", "rewards: non-finite",
                    "actions: outside [-1, 1]", "front"):
        assert problem in logged


def learner_storage(tmp_path):
    from serl.data import ReplayStorage

    return ReplayStorage(tmp_path / "run" / "buffers" / "online", SPEC, 10**6)


@pytest.mark.timeout(120)
def test_a_failing_reward_classifier_does_not_stop_the_actor(tmp_path):
    calls = {"n": 0}

    def flaky(obs):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("classifier crashed")
        return float("nan") if calls["n"] % 3 == 1 else 0.2

    raw = gym.make("serl/PandaPickCube-v0", image_obs=False, max_episode_steps=15)
    env = make_policy_env(raw, classifier=flaky)
    transport = InProcessTransport(max_batch=8)
    spec = TransitionSpec.from_spaces(env.observation_space, env.action_space)
    agent = make_agent(AGENT, example_observation(env.observation_space), spec.action_dim, 0)
    params = agent.policy_params()
    transport.publisher().publish(WeightsVersion(0, 0), params)
    actor = Actor(env, AGENT, ActorConfig(actor_id="a", max_env_steps=45, eval_every_episodes=0,
                                          flush_timeout_s=0.1),
                  transport.adder("a"), transport.variable_client(), transport.stats_sink("a"))
    source = transport.transition_source()
    counters = actor.run(threading.Event())
    received = [t for b in source.receive(100, 0.1) for t in b.transitions]
    env.close()
    assert counters.env_steps == 45 and len(received) == 45  # every step taken and sent
    # failures score 0, never succeed
    assert calls["n"] >= 45 and all(t["rewards"] == 0.0 for t in received)
