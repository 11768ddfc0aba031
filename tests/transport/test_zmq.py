"""The ZeroMQ transport on real loopback sockets: delivery exactly once through restarts of either
side, several actors, weights, handshake refusal, CURVE, liveness."""

import logging
import threading
import time

import numpy as np
import pytest
import zmq
from fuzz_messages import mutated_message
from transport_helpers import (
    INFO,
    SPEC,
    StandIn,
    make_actor,
    make_learner,
    rss_bytes,
    transition,
    wait_until,
)

from serl.ports import free_ports
from serl.transport import (
    Adder,
    StatsSink,
    TransitionSource,
    VariableClient,
    VariableSource,
    WeightsPublisher,
)
from serl.transport.actor_link import LinkSettings
from serl.transport.frames import FrameCodec, jpeg_roundtrip
from serl.transport.interfaces import WeightsVersion
from serl.transport.keys import ActorCurve, LearnerCurve, generate_keys
from serl.transport.messages import PROTOCOL_VERSION, pack, spec_info
from serl.transport.produced_log import produced_sequences
from serl.transport.security import InsecureBindError

PARAMS = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float32)}


def _check_stored(stand, actor_id, n, quality=None):
    assert stand.sequences(actor_id) == list(range(n))
    for i in range(n):
        got, want = stand.store[(actor_id, i)], transition(i)
        assert got["rewards"] == np.float32(i) and got["step"] == i
        np.testing.assert_array_equal(got["observations"]["state"], want["observations"]["state"])
        frame = want["next_observations"]["front"]
        np.testing.assert_array_equal(
            got["next_observations"]["front"],
            frame if quality is None else jpeg_roundtrip(frame, quality),
        )


@pytest.mark.timeout(20)
def test_transitions_stats_and_weights_round_trip(tmp_path):
    learner = make_learner()
    learner.publish(WeightsVersion(0, 1), PARAMS)  # before any actor: the late joiner asks for it
    actor = make_actor(
        learner, "a", tmp_path / "spool", template_params=PARAMS, frames=FrameCodec(85)
    )
    stand = StandIn().start(learner)
    try:
        assert isinstance(learner, TransitionSource) and isinstance(learner, WeightsPublisher)
        assert isinstance(learner, VariableSource)
        assert isinstance(actor.adder(), Adder) and isinstance(
            actor.variable_client(), VariableClient
        )
        assert isinstance(actor.stats_sink(), StatsSink)
        client = actor.variable_client()
        version, params = client.wait(5)
        assert version == WeightsVersion(0, 1) and not params["w"].flags.writeable
        np.testing.assert_array_equal(params["w"], PARAMS["w"])
        assert client.poll() is None  # only strictly newer versions
        adder = actor.adder()
        for i in range(50):
            adder.add(transition(i))
        actor.stats_sink().episode(
            {"return": np.float32(1.5), "length": 50, "success": True, "task": "pick"}
        )
        assert adder.flush(10) and adder.pending() == 0
        _check_stored(stand, "a", 50, quality=85)
        stats = []
        assert wait_until(lambda: stats.extend(learner.stats()) or stats, 5)
        assert stats == [
            {"return": 1.5, "length": 50, "success": True, "task": "pick", "actor_id": "a"}
        ]

        # a new incarnation beats any step of the old one
        learner.publish(WeightsVersion(1, 0), PARAMS)
        assert client.wait(5)[0] == WeightsVersion(1, 0)
        with pytest.raises(ValueError):
            learner.publish(WeightsVersion(0, 99), PARAMS)
        learner.publish(WeightsVersion(1, 5), {"w": np.zeros((3, 2), np.float32), "b": PARAMS["b"]})
        # checked, never swapped in
        assert wait_until(lambda: actor.counters().get("bad_messages", 0) >= 1, 5)
        assert client.poll() is None
        learner.publish(WeightsVersion(1, 6), {"w": PARAMS["w"] + 1, "b": PARAMS["b"]})
        version, params = client.wait(5)
        assert version == WeightsVersion(1, 6) and params["w"][0, 0] == 1
        assert learner.latest()[0] == WeightsVersion(1, 6)
    finally:
        stand.stop()
        actor.close()
        learner.close()


@pytest.mark.timeout(30)
def test_three_actors_at_once_nothing_lost_or_duplicated(tmp_path):
    learner = make_learner()
    stand = StandIn().start(learner)
    actors = [make_actor(learner, f"robot-{k}", tmp_path / f"spool-{k}") for k in range(3)]
    try:

        def act(actor):
            adder = actor.adder()
            for i in range(300):
                adder.add(transition(i))

        threads = [threading.Thread(target=act, args=(a,)) for a in actors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(a.adder().flush(20) for a in actors)
        for k in range(3):
            _check_stored(stand, f"robot-{k}", 300)
        assert stand.duplicates == 0  # one learner process hands each sequence to its loop once
        assert learner.connected_actors() == ["robot-0", "robot-1", "robot-2"]
    finally:
        stand.stop()
        for a in actors:
            a.close()
        learner.close()


@pytest.mark.timeout(40)
def test_learner_restart_mid_stream_loses_nothing_and_add_never_waits(tmp_path):
    learner = make_learner()
    ports = learner.data_port, learner.weights_port
    stand = StandIn().start(learner)
    actor = make_actor(learner, "a", tmp_path / "spool")
    adder = actor.adder()
    try:
        for i in range(300):
            adder.add(transition(i))
        assert wait_until(lambda: len(stand.store) >= 50, 10)
        stand.stop()  # mid-stream: some delivered and not acknowledged
        learner.close()
        durations = []
        for i in range(300, 1300):  # the learner is down
            start = time.perf_counter()
            adder.add(transition(i))
            durations.append(time.perf_counter() - start)
        assert np.percentile(durations, 99) < 0.005 and np.median(durations) < 0.001, max(durations)
        assert wait_until(lambda: not actor.connected, 3)
        learner = make_learner(*ports)
        restarted = time.monotonic()
        stand.start(learner)
        assert wait_until(lambda: actor.connected, 5)
        reconnect_s = time.monotonic() - restarted
        assert adder.flush(15)
        _check_stored(stand, "a", 1300)
        assert produced_sequences(tmp_path / "spool" / "produced.log") == set(range(1300))
        assert reconnect_s < 3
    finally:
        stand.stop()
        actor.close()
        learner.close()


@pytest.mark.timeout(30)
def test_actor_restart_resends_unacked_and_continues_its_sequence(tmp_path):
    ports = tuple(free_ports(2))
    # no learner yet: nothing can be acknowledged
    actor = make_actor(ports, "a", tmp_path / "spool")
    for i in range(100):
        actor.adder().add(transition(i))
    actor.close()  # without flush
    actor = make_actor(ports, "a", tmp_path / "spool")
    assert actor.spool.next_sequence == 100
    learner = make_learner(*ports)
    stand = StandIn().start(learner)
    try:
        for i in range(100, 150):
            actor.adder().add(transition(i))
        assert actor.adder().flush(15)
        _check_stored(stand, "a", 150)
    finally:
        stand.stop()
        actor.close()
        learner.close()


@pytest.mark.timeout(20)
def test_handshake_mismatch_is_refused_naming_the_field(tmp_path, caplog):
    other = type(SPEC)(
        {
            "state": ((5,), np.float32),
            "front": ((32, 32, 3), np.uint8),
            "wrist": ((16, 16, 3), np.uint8),
        },
        3,
    )
    learner = make_learner(info=spec_info(other, agent_config="cfg-hash-1"))
    actor = make_actor(learner, "a", tmp_path / "spool")
    try:
        with caplog.at_level(logging.ERROR):
            assert wait_until(lambda: actor.refused is not None, 5)
            assert (
                "spec.observations.front: actor 'uint8[16, 16, 3]', learner 'uint8[32, 32, 3]'"
                in actor.refused
            )
            assert learner.counters()["refused"] == 1
            actor.adder().add(transition(0))  # still spooled, never sent
            assert not actor.adder().flush(2)
        sides = {r.name for r in caplog.records if "spec.observations.front" in r.getMessage()}
        assert sides == {"serl.transport.learner", "serl.transport.actor"}  # printed on both sides
        # the actor stopped trying
        assert learner.counters()["refused"] == 1 and not actor.connected
    finally:
        actor.close()
        learner.close()


@pytest.mark.timeout(30)
def test_curve_an_unknown_key_gets_no_weights_and_delivers_nothing(tmp_path):
    keys = generate_keys(tmp_path / "keys", ("good",))
    rogue = generate_keys(tmp_path / "rogue", ("good",))  # a key pair this learner never accepted
    learner = make_learner(curve=LearnerCurve.from_dir(keys["learner"]))
    learner.publish(WeightsVersion(0, 1), PARAMS)
    stand = StandIn().start(learner)
    good = make_actor(
        learner, "good", tmp_path / "s1", curve=ActorCurve.from_dir(keys["actor"], "good")
    )
    bad = make_actor(
        learner,
        "bad",
        tmp_path / "s2",
        curve=ActorCurve(rogue["actor"] / "good.key_secret", keys["actor"] / "learner.key"),
    )
    plain = make_actor(learner, "plain", tmp_path / "s3")  # no CURVE at all
    actors = (good, bad, plain)
    try:
        for actor in actors:
            for i in range(20):
                actor.adder().add(transition(i))
        assert good.adder().flush(10) and good.variable_client().wait(5) is not None
        learner.publish(WeightsVersion(0, 2), PARAMS)  # on the PUB socket this time
        assert wait_until(lambda: good.counters().get("weights", 0) == 2, 5)
        time.sleep(1.0)
        for actor in (bad, plain):
            assert not actor.connected and actor.variable_client().poll() is None
            assert actor.counters().get("weights", 0) == 0 and actor.counters()["connects"] >= 2
        assert {a for a, _ in stand.store} == {"good"}
    finally:
        stand.stop()
        for actor in actors:
            actor.close()
        learner.close()


@pytest.mark.timeout(10)
def test_keys_command_and_the_refusal_of_a_public_bind_without_curve(tmp_path, caplog, capsys):
    from serl.cli import main

    assert main(["keys", "generate", str(tmp_path / "keys"), "--actor", "r1", "--actor", "r2"]) == 0
    assert {p.name for p in (tmp_path / "keys" / "learner" / "authorized").iterdir()} == {
        "r1.key",
        "r2.key",
    }
    assert (tmp_path / "keys" / "actor" / "r2.key_secret").stat().st_mode & 0o077 == 0
    assert main(["keys", "generate", str(tmp_path / "keys")]) == 1  # never overwrites keys
    assert "already holds keys" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING):
        make_learner().close()
        assert not caplog.records
        with pytest.raises(InsecureBindError, match="without CURVE"):
            make_learner(bind_host="0.0.0.0")
        make_learner(bind_host="0.0.0.0", allow_unauthenticated_network=True).close()
    assert any("without CURVE" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(30)
def test_liveness_both_ways(tmp_path):
    learner = make_learner(actor_timeout=1.0)
    # default timing: 3 s to notice
    actor = make_actor(learner, "a", tmp_path / "spool", settings=LinkSettings())
    ctx = zmq.Context()
    silent = ctx.socket(zmq.DEALER)
    silent.setsockopt(zmq.LINGER, 0)
    try:
        assert wait_until(lambda: actor.connected, 5)
        silent.connect(f"tcp://127.0.0.1:{learner.data_port}")
        silent.send(pack("hello", protocol=PROTOCOL_VERSION, actor_id="silent", resume_from=0,
                         info=INFO))
        assert silent.poll(3000) and b"welcome" in silent.recv()
        assert wait_until(lambda: "silent" in learner.connected_actors(), 2)
        # released; the live actor stays
        assert wait_until(lambda: learner.connected_actors() == ["a"], 3)
        assert learner.counters()["released"] == 1
        learner.close()
        lost = time.monotonic()
        assert wait_until(lambda: not actor.connected, 3.5)
        assert time.monotonic() - lost < 3.0
    finally:
        silent.close()
        ctx.term()
        actor.close()
        learner.close()


@pytest.mark.timeout(60)
def test_ten_thousand_mutated_messages_are_dropped_and_counted_while_valid_traffic_flows(tmp_path):
    limit = 64 << 10
    rng = np.random.default_rng(0)
    # made first: not part of the memory growth
    mutated = [mutated_message(rng, limit) for _ in range(10_000)]
    learner = make_learner(max_message_bytes=limit, actor_timeout=60)
    stand = StandIn().start(learner)
    actor = make_actor(learner, "real", tmp_path / "spool")
    ctx = zmq.Context()
    fuzzer = ctx.socket(zmq.DEALER)
    fuzzer.setsockopt(zmq.LINGER, 0)
    fuzzer.setsockopt(zmq.RCVHWM, 100)  # we never read the learner's answers: let it drop them
    try:
        fuzzer.connect(f"tcp://127.0.0.1:{learner.data_port}")
        fuzzer.send(pack("hello", protocol=PROTOCOL_VERSION, actor_id="fuzz", resume_from=0,
                         info=INFO))
        assert fuzzer.poll(3000)
        for frames in mutated[:1000]:  # warm-up, then measure memory
            fuzzer.send_multipart(frames)
        assert wait_until(lambda: learner.counters().get("bad_messages", 0) == 1000, 20)
        baseline = rss_bytes()

        def act():
            adder = actor.adder()
            for i in range(400):
                adder.add(transition(i))
                time.sleep(0.002)

        valid = threading.Thread(target=act)
        valid.start()
        for frames in mutated[1000:]:
            fuzzer.send_multipart(frames)
        valid.join()
        assert wait_until(lambda: learner.counters().get("bad_messages", 0) == 10_000, 30), (
            learner.counters()
        )
        assert actor.adder().flush(15)
        _check_stored(stand, "real", 400)  # valid traffic unaffected
        assert rss_bytes() - baseline < 40 << 20, (rss_bytes() - baseline) / 2**20
        counters = learner.counters()
        assert counters["bad_messages"] == 10_000 and counters.get("internal_errors", 0) == 0
        assert (
            counters["bad_size"] > 0
            and counters["bad_transition"] > 0
            and counters["bad_envelope"] > 0
        )
        assert set(learner.connected_actors()) == {"fuzz", "real"}  # still serving both
    finally:
        fuzzer.close()
        ctx.term()
        stand.stop()
        actor.close()
        learner.close()
