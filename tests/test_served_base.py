"""A base policy served by another process (`serl serve-policy FILE`, ZeroMQ DEALER/ROUTER): it
answers as the file does; killed mid-episode, the episode ends at that step with no transition and
nothing more is sent, and the next reset holds until it gives up; a reply that is late, for another
request, of the wrong shape, not finite or out of range is never used."""

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import msgpack
import numpy as np
import pytest
import zmq

import experiments
from serl.actor.build import actor_spec
from serl.agents import bc
from serl.agents.base_policy import (
    BasePolicyError,
    FileBasePolicy,
    base_identity,
    spec_without_base,
)
from serl.agents.bc_config import BCConfig
from serl.agents.factory import example_observation, make_agent
from serl.agents.policy_file import save_policy
from serl.ports import free_port
from serl.serving import messages as m
from serl.serving.client import ServedBasePolicy
from serl.transport.wire import encode_array

AGENT_HIDDEN = (16,)


def task_config(base: str):
    config = experiments.load("sim_pick_cube_state")
    return dataclasses.replace(
        config, env=dataclasses.replace(config.env, max_episode_steps=30),
        wrappers=dataclasses.replace(config.wrappers, base_policy=base, base_reset_wait_s=1.0),
        agent=dataclasses.replace(config.agent, grasp_critic=False, residual_scale=0.5,
                                  hidden_dims=AGENT_HIDDEN, batch_size=8))


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    """An untrained BC policy file of sim_pick_cube_state (what is served, not how well it acts)."""
    config = experiments.load("sim_pick_cube_state")
    agent = bc.policy_agent_config(config.agent, BCConfig(hidden_dims=(16,)), gripper=True)
    obs_space = actor_spec(config).observation_spec
    params = bc.init_params(agent, {k: np.zeros(s, d) for k, (s, d) in obs_space.items()}, 7, 0)
    path = tmp_path_factory.mktemp("base") / "base.npz"
    save_policy(path, params, kind="bc", config=config, task="sim_pick_cube_state", agent=agent,
                report={})
    return path


@pytest.fixture
def server(policy_file):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "serl.cli", "serve-policy", str(policy_file),
                             "--port", str(port)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert f"tcp://127.0.0.1:{port}" in line, line
        yield proc, f"tcp://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def observations(config, n: int) -> dict:
    rng = np.random.default_rng(0)
    spec = spec_without_base(actor_spec(config))
    return {k: rng.uniform(-1, 1, (n, *s)).astype(d) for k, (s, d) in
            spec.observation_spec.items()}


@pytest.mark.timeout(120)
def test_the_served_base_answers_as_the_file(policy_file, server):
    _, address = server
    config = task_config(address)
    served = ServedBasePolicy(address, spec_without_base(actor_spec(config)))
    try:
        file_base = FileBasePolicy(policy_file, config)
        assert served.identity == file_base.identity == base_identity(config)  # the handshake's
        batch = observations(config, 16)
        np.testing.assert_allclose(served(batch), file_base(batch), atol=1e-6)
        one = {k: v[0] for k, v in batch.items()}
        np.testing.assert_allclose(served(one), file_base(one), atol=1e-6)
    finally:
        served.close()


@pytest.mark.timeout(180)
def test_a_base_killed_mid_episode_ends_it_and_nothing_more_moves(server):
    """The actor's loop over the residual stack with the served base: the server is killed at the
    6th observation; that step ends the episode with no transition, the env is never stepped
    again, and the next reset gives up after `base_reset_wait_s` (the arm held)."""
    from serl.actor.config import ActorConfig
    from serl.actor.loop import Actor
    from serl.commands.runtime import build_env
    from serl.transport.fakes import RecordingAdder, RecordingStatsSink, ScriptedVariableClient
    from serl.transport.interfaces import WeightsVersion

    proc, address = server
    config = task_config(address)
    env = build_env(config, operator=False)
    base = env.unwrapped  # the raw env: count its steps
    steps = {"n": 0}
    raw_step = base.step
    base.step = lambda action: (steps.__setitem__("n", steps["n"] + 1), raw_step(action))[1]
    wrapper = env.env
    while type(wrapper).__name__ != "BaseActionWrapper":
        wrapper = wrapper.env
    served, calls = wrapper.base, {"n": 0}

    def killing(obs):
        calls["n"] += 1
        if calls["n"] == 6:  # the server dies before answering this one
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return served(obs)

    wrapper.base = killing
    params = make_agent(config.agent, example_observation(env.observation_space), 7,
                        0).policy_params()
    adder = RecordingAdder()
    actor = Actor(env, config.agent, ActorConfig(eval_every_episodes=0), adder,
                  ScriptedVariableClient((WeightsVersion(0, 1), params)), RecordingStatsSink())
    actor.wait_for_weights()
    summary = actor.run_episode(threading.Event())
    # reset + 4 answered steps; the 5th step's observation got no answer
    assert steps["n"] == 5 and len(adder.transitions) == 4 and summary["length"] == 4
    assert served.counters["late"] == 0
    started = time.monotonic()
    with pytest.raises(BasePolicyError, match="no answer for 1 s after a reset"):
        actor.run_episode(threading.Event())
    assert time.monotonic() - started >= 1.0 and steps["n"] == 5  # nothing stepped meanwhile
    env.close()


class FakeServer:
    """A ROUTER that welcomes, then answers each request with `answer(request_id)`'s messages."""

    def __init__(self, answer):
        self.ctx = zmq.Context()
        self.socket = self.ctx.socket(zmq.ROUTER)
        self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.answer, self.stop = answer, False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            if not self.socket.poll(50):
                continue
            rid, data = self.socket.recv_multipart()
            message = msgpack.unpackb(data)
            if message["kind"] == "hello":
                reply = [m.pack("welcome", identity="sha256:fake", action_dim=7)]
            else:
                reply = self.answer(message["id"])
            for part in reply:
                self.socket.send_multipart([rid, part])

    def close(self):
        self.stop = True
        self.thread.join()
        self.ctx.destroy(linger=0)


@contextmanager
def fake_served(answer):
    """(a client with a 200 ms deadline, one observation) against a `FakeServer(answer)`."""
    fake = FakeServer(answer)
    config = task_config(f"tcp://127.0.0.1:{fake.port}")
    client = ServedBasePolicy(f"tcp://127.0.0.1:{fake.port}",
                              spec_without_base(actor_spec(config)), deadline_s=0.2)
    try:
        yield client, {k: v[0] for k, v in observations(config, 1).items()}
    finally:
        client.close()
        fake.close()


def action(request: int, value, shape=(7,), dtype=np.float32) -> bytes:
    return m.pack("action", id=request, action=encode_array(np.full(shape, value, dtype)))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("answer, says", [
    (lambda r: [], "did not answer"),
    (lambda r: [action(r + 1, 0.1)], "did not answer"),
    (lambda r: [action(r, 0.1, (6,))], "unusable action (action: <f4[6], expected <f4[7])"),
    (lambda r: [action(r, 0.1, dtype=np.float64)], "unusable action (action: <f8[7]"),
    (lambda r: [action(r, np.nan)], "not finite"),
    (lambda r: [action(r, 1.5)], "leaves [-1, 1]"),
    (lambda r: [m.pack("error", id=r, reason="GPU out of memory")], "GPU out of memory"),
    (lambda r: [b"\x93garbage"], "did not answer"),
])
def test_a_bad_reply_is_never_used(answer, says):
    with fake_served(answer) as (client, obs):
        with pytest.raises(BasePolicyError, match=re.escape(says)):
            client(obs)


@pytest.mark.timeout(60)
def test_a_late_answer_is_dropped_and_the_next_request_gets_its_own():
    delays = iter([0.4, 0.0])

    def answer(r):
        time.sleep(next(delays))
        return [action(r, 0.25 * (r + 1))]

    with fake_served(answer) as (client, obs):
        with pytest.raises(BasePolicyError, match="did not answer request 0"):
            client(obs)
        time.sleep(0.3)  # request 0's answer arrives now, late
        np.testing.assert_allclose(client(obs), np.full(7, 0.5))  # request 1's own answer
        assert client.counters["late"] == 1


@pytest.mark.timeout(90)
def test_a_curve_served_base_answers_only_the_rigs_keys(policy_file, tmp_path):
    """`serl serve-policy --curve-keys DIR` (what another interface needs): an actor's key from
    DIR gets the file's answers; a client without CURVE, or with another rig's key, never gets
    a welcome (so it never gets an action)."""
    from serl.transport.keys import ActorCurve, generate_keys

    rig, stranger = generate_keys(tmp_path / "rig"), generate_keys(tmp_path / "stranger")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "serl.cli", "serve-policy", str(policy_file),
                             "--port", str(port), "--curve-keys", str(tmp_path / "rig")],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    address = f"tcp://127.0.0.1:{port}"
    try:
        assert address in proc.stdout.readline()
        config = task_config(address)
        spec = spec_without_base(actor_spec(config))
        served = ServedBasePolicy(address, spec, curve=ActorCurve.from_dir(rig["actor"]))
        try:
            batch = observations(config, 4)
            np.testing.assert_allclose(served(batch), FileBasePolicy(policy_file, config)(batch),
                                       atol=1e-6)
        finally:
            served.close()
        for curve in (None, ActorCurve.from_dir(stranger["actor"])):
            with pytest.raises(BasePolicyError, match="not connected|did not answer the hello"):
                ServedBasePolicy(address, spec, hello_timeout_s=1.0, curve=curve)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
