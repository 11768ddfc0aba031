"""Each side builds the frozen trunk from its own config, and the handshake compares its
fingerprint: an actor whose trunk weights differ (another seed, another weights file) is refused by
a real learner transport, naming them; the same weights under another local path are not."""

import dataclasses
import time

import numpy as np
import pytest

import experiments
from serl.commands.runtime import TRUNK_WEIGHTS_KEY, handshake_info
from serl.data import TransitionSpec
from serl.networks.config import EncoderConfig
from serl.networks.trunk import frozen_trunk
from serl.networks.trunk_weights import save_trunk_params
from serl.transport.actor_link import LinkSettings
from serl.transport.messages import differences
from serl.transport.zmq_actor import ZmqActorTransport
from serl.transport.zmq_learner import ZmqLearnerTransport

SPEC = TransitionSpec({"state": ((5,), np.float32)}, 3)
ENCODER = EncoderConfig(image_keys=("front",), trunk="small", frozen_trunk=True,
                        random_frozen_trunk=True)


def config(encoder: EncoderConfig):
    base = experiments.load("sim_pick_cube_ros")  # a task with a "front" camera
    return dataclasses.replace(base, agent=dataclasses.replace(base.agent, encoder=encoder))


def info(encoder: EncoderConfig) -> dict:
    return handshake_info(config(encoder), SPEC, "r")


@pytest.mark.timeout(30)
def test_an_actor_with_another_trunk_seed_is_refused_naming_the_trunk(tmp_path):
    learner = ZmqLearnerTransport(SPEC, info(ENCODER), actor_timeout=1.5)
    actor = ZmqActorTransport("127.0.0.1", learner.data_port, learner.weights_port, "a", SPEC,
                              info(dataclasses.replace(ENCODER, trunk_seed=1)), tmp_path / "spool",
                              settings=LinkSettings(heartbeat_interval=0.1, backoff_initial=0.05))
    try:
        deadline = time.monotonic() + 10
        while actor.refused is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert actor.refused is not None and f"{TRUNK_WEIGHTS_KEY}: actor 'sha256:" in actor.refused
        assert "agent.encoder.trunk_seed: actor '1', learner '0'" in actor.refused
    finally:
        actor.close()
        learner.close()


@pytest.mark.timeout(30)
def test_weights_files_are_compared_by_what_they_hold_not_where_they_are(tmp_path):
    weights = frozen_trunk(ENCODER)
    paths = [tmp_path / "learner" / "w.msgpack", tmp_path / "actor" / "w.msgpack"]
    for path in paths:
        path.parent.mkdir()
        save_trunk_params(path, weights)
    by_path = [dataclasses.replace(ENCODER, random_frozen_trunk=False, pretrained_path=str(p))
               for p in paths]
    assert differences(info(by_path[0]), info(by_path[1]), "learner", "actor") == []
    other = {k: {n: np.asarray(a) + 1.0 for n, a in v.items()} for k, v in weights.items()}
    save_trunk_params(paths[1], other)  # the actor's file now holds other weights
    diffs = differences(info(by_path[0]), info(by_path[1]), "learner", "actor")
    assert [d.split(":")[0] for d in diffs] == [TRUNK_WEIGHTS_KEY]
