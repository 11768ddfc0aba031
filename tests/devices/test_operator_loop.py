"""The operator in the real training loop: the actor's `run_episode` over the in-process transport
into a real learner. Intervention transitions land in both buffers with the executed (operator's)
action, the episode stats count the take-over, and time paused is not episode time."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest

import serl  # noqa: F401
from serl.actor.config import ActorConfig
from serl.actor.loop import Actor
from serl.agents.config import SACConfig
from serl.devices.base import DeviceState
from serl.envs.stack import PolicyEnvConfig, make_policy_env
from serl.learner.config import LearnerConfig
from serl.learner.loop import Learner
from serl.transport.inprocess import InProcessTransport

AGENT = SACConfig(hidden_dims=(16, 16), batch_size=16, grasp_critic=True)
PUSH = np.float32([0.3, -0.2, 0.4, 0.0, 0.0, 0.1, 1.0])  # the operator's base-frame action
TAKEOVER = range(6, 11)  # reads (= steps) on which the operator is active
PAUSE_READS = 30  # reads the pause lasts, at the wrapper's polling period


class Operator:
    """Takes over on `TAKEOVER` reads; presses pause on read 2 and again PAUSE_READS reads later."""

    def __init__(self):
        self.reads = 0

    def read(self) -> DeviceState:
        i, self.reads = self.reads, self.reads + 1
        buttons = ("pause",) if i in (2, 2 + PAUSE_READS) else ()
        step = i if i <= 2 else max(2, i - PAUSE_READS)  # the env step this read belongs to
        return DeviceState(PUSH, buttons, active=step in TAKEOVER)


@pytest.mark.timeout(120)
def test_interventions_reach_both_buffers_with_the_executed_action(tmp_path):
    raw = gym.make("serl/PandaPickCube-v0", image_obs=False, max_episode_steps=15)
    env = make_policy_env(raw, PolicyEnvConfig(relative_frame=False, operator_poll_s=0.01),
                          device=Operator())
    transport = InProcessTransport()
    learner = Learner(AGENT, LearnerConfig(buffer_chunk_size=64), env.observation_space,
                      env.action_space, tmp_path / "run", transport.transition_source(),
                      transport.publisher())
    learner.publish()
    actor = Actor(env, AGENT, ActorConfig(actor_id="a1"), transport.adder("a1"),
                  transport.variable_client(), transport.stats_sink("a1"),
                  state_dir=tmp_path / "actor")
    actor.wait_for_weights()
    start = time.monotonic()
    summary = actor.run_episode(threading.Event())
    wall = time.monotonic() - start
    while learner.ingest(timeout=0.2):
        pass

    online = learner.online.get(np.arange(len(learner.online)))
    assert len(learner.online) == summary["length"] == 15
    intervened = np.flatnonzero(online["intervened"])
    assert intervened.tolist() == list(TAKEOVER)
    # The operator's action was executed and is what both buffers hold;
    # the policy's own actions are elsewhere.
    np.testing.assert_array_equal(online["actions"][intervened], np.tile(PUSH, (len(TAKEOVER), 1)))
    others = np.delete(online["actions"], intervened, axis=0)
    assert not np.any(np.all(others == PUSH, axis=1))
    demo = learner.demo.get(np.arange(len(learner.demo)))
    origins = learner.demo.origins(np.arange(len(learner.demo)))
    assert origins == [("a1", int(s)) for s in intervened]
    np.testing.assert_array_equal(demo["actions"], online["actions"][intervened])
    np.testing.assert_array_equal(demo["observations"]["state"],
                                  online["observations"]["state"][intervened])

    assert summary["interventions"] == len(TAKEOVER) and summary["takeovers"] == 1
    assert summary["intervention_rate"] == pytest.approx(len(TAKEOVER) / 15)
    # The pause (about PAUSE_READS polls of 10 ms) is not episode time.
    assert summary["paused_s"] >= 0.25 and summary["seconds"] <= wall - summary["paused_s"] + 1e-6
    learner.close()
