"""Security on a lab network, on real ZeroMQ sockets (loopback traffic only): no network bind
without CURVE unless explicitly allowed; with CURVE a key acts only as the actor id it is named
after; refused and malformed peers are logged at a bounded rate."""

import logging
import threading

import numpy as np
import pytest
import zmq
from fuzz_messages import CODEC, mutated_message
from transport_helpers import INFO, StandIn, make_actor, make_learner, transition, wait_until

from serl.ports import free_ports
from serl.transport import messages as m
from serl.transport.actor_link import LinkSettings
from serl.transport.config import DEFAULT_ACTOR_ID, TransportConfig
from serl.transport.keys import (
    ActorCurve,
    LearnerCurve,
    add_actor_keys,
    client_keys,
    generate_keys,
    make_client,
)
from serl.transport.rate_log import RateLimitedLog
from serl.transport.security import InsecureBindError, check_bind


def _hello(actor_id: str, protocol: int = m.PROTOCOL_VERSION, resume_from: int = 0) -> bytes:
    return m.pack("hello", protocol=protocol, actor_id=actor_id, resume_from=resume_from,
                  info=INFO)


def _batch(actor_id: str, first: int = 0) -> bytes:
    return m.pack("batch", actor_id=actor_id, first_sequence=first,
                  transitions=[CODEC.encode(transition(first))])


def _dealer(ctx, port: int, curve: ActorCurve | None = None, routing_id: bytes | None = None):
    socket = ctx.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        make_client(socket, client_keys(curve))
    if routing_id is not None:
        socket.setsockopt(zmq.ROUTING_ID, routing_id)
    socket.connect(f"tcp://127.0.0.1:{port}")
    return socket


def _ask(socket, data: bytes, timeout: float = 3.0):
    """(kind, fields) of the learner's answer to `data`, or None if it does not answer."""
    socket.send(data)
    if not socket.poll(int(timeout * 1000)):
        return None
    return m.parse(socket.recv(), m.LEARNER_MESSAGES, 1 << 30)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("host", ["0.0.0.0", "*", "192.0.2.7", "eth0"])
def test_a_network_bind_without_curve_is_refused_before_anything_is_bound(host):
    threads = threading.active_count()
    data_port, weights_port = free_ports(2)
    with pytest.raises(InsecureBindError) as refused:
        make_learner(data_port, weights_port, bind_host=host)
    text = str(refused.value)
    for named in ("CURVE", "serl keys generate DIR", "--transport.curve-keys",
                  "--transport.allow-unauthenticated-network"):
        assert named in text
    assert isinstance(refused.value, ValueError)
    assert threading.active_count() == threads  # no I/O thread, no authenticator was started
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert check_bind(loopback, curve=False) is False
    assert check_bind(host, curve=True) is False and check_bind(host, False, True) is True
    assert TransportConfig().allow_unauthenticated_network is False


@pytest.mark.timeout(15)
def test_allowed_explicitly_it_serves_with_one_loud_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "serl.transport"):
        learner = make_learner(bind_host="0.0.0.0", allow_unauthenticated_network=True)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("SECURITY: serving on 0.0.0.0 without")
    assert "serl keys generate" in warnings[0]
    stand = StandIn().start(learner)
    actor = make_actor(learner, "a", tmp_path / "spool")  # connects through 127.0.0.1 only
    try:
        for i in range(5):
            actor.adder().add(transition(i))
        assert actor.adder().flush(10) and stand.sequences("a") == list(range(5))
    finally:
        stand.stop()
        actor.close()
        learner.close()


@pytest.mark.timeout(30)
def test_with_curve_a_key_acts_only_as_the_actor_id_it_is_named_after(tmp_path, caplog):
    keys = generate_keys(tmp_path / "keys", ("a", "b", "c"))
    rogue = generate_keys(tmp_path / "rogue", ("a",))["actor"]  # never authorized
    caplog.set_level(logging.INFO, "serl.transport")
    # a network bind is fine with CURVE (no warning); everything still connects via 127.0.0.1
    learner = make_learner(bind_host="0.0.0.0", curve=LearnerCurve.from_dir(keys["learner"]),
                           actor_timeout=60)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    stand = StandIn().start(learner)
    curve = {name: ActorCurve.for_actor(keys["actor"], name) for name in ("a", "b", "c")}
    actor_a = make_actor(learner, "a", tmp_path / "a", curve=curve["a"])
    impostor = make_actor(learner, "a", tmp_path / "impostor", curve=curve["b"])
    actor_b = make_actor(learner, "b", tmp_path / "b", curve=curve["b"])
    ctx = zmq.Context()
    try:
        for i in range(20):
            actor_a.adder().add(transition(i))
            impostor.adder().add(transition(i + 100))
        assert actor_a.adder().flush(10) and stand.watermarks["a"] == 19
        # actor b's key claiming actor a's id: refused, saying why; a keeps its connection
        assert wait_until(lambda: impostor.refused is not None, 5)
        assert "CURVE key is 'b'" in impostor.refused and "--actor.actor-id b" in impostor.refused
        assert impostor.counters().get("batches_sent", 0) == 0 and not impostor.connected
        assert "serl.transport.actor" in {r.name for r in caplog.records if r.levelno >= 40}
        for i in range(5):
            actor_b.adder().add(transition(i))
        assert actor_b.adder().flush(10) and stand.sequences("b") == list(range(5))

        port = learner.data_port
        raw_c = _dealer(ctx, port, curve["c"], routing_id=b"reused")
        assert _ask(raw_c, _hello("c"))[0] == "welcome"
        for attack in (_hello("a", resume_from=20), _batch("a", 20)):
            kind, answer = _ask(raw_c, attack)
            assert kind == "refuse" and "CURVE key is 'c'" in answer["reason"]
        raw_c.close()
        # another key on the routing id c's connection had: every message is checked, not the
        # hello alone
        answer = None
        for _ in range(20):  # until the ROUTER has dropped c's connection (it ignores a second
            # connection with a routing id in use)
            raw_b = _dealer(ctx, port, curve["b"], routing_id=b"reused")
            answer = _ask(raw_b, m.pack("heartbeat"), 0.25)
            if answer is not None:
                break
            raw_b.close()
        assert answer is not None and answer[0] == "refuse", answer
        for attack in (_batch("c"), m.pack("stats", stats={"return": 1.0}),
                       m.pack("weights_request")):
            assert _ask(raw_b, attack)[0] == "refuse"
        raw_b.close()
        # a key the learner never authorized never completes the handshake
        stranger = _dealer(ctx, port, ActorCurve.from_dir(rogue, "a"))
        assert _ask(stranger, _hello("a"), 1.0) is None
        stranger.close()

        assert actor_a.connected and learner.connected_actors() == ["a", "b", "c"]
        assert stand.watermarks["a"] == 19 and not learner.stats()
        assert stand.sequences("c") == []
        for i in range(20, 30):
            actor_a.adder().add(transition(i))
        assert actor_a.adder().flush(10) and stand.sequences("a") == list(range(30))
        assert all(stand.store[("a", i)]["rewards"] == i for i in range(30))  # none from b
        counters = learner.counters()  # two hellos refused, then at least five other messages
        assert counters["refused"] == 2 and counters["bad_identity"] >= 5
        assert counters["refused_identity"] == counters["refused"] + counters["bad_identity"]
        assert counters.get("replaced_connections", 0) == 0

        # a key added while the learner runs counts from its actor's next connection
        add_actor_keys(tmp_path / "keys", ("late",))
        late = make_actor(learner, "late", tmp_path / "late",
                          curve=ActorCurve.for_actor(keys["actor"], "late"))
        try:
            late.adder().add(transition(0))
            assert late.adder().flush(10) and stand.sequences("late") == [0]
        finally:
            late.close()
    finally:
        ctx.destroy(linger=0)
        stand.stop()
        for actor in (actor_a, impostor, actor_b):
            actor.close()
        learner.close()


@pytest.mark.timeout(20)
def test_floods_of_malformed_and_refused_messages_log_a_bounded_number_of_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO, "serl.transport")
    learner = make_learner(actor_timeout=60, max_message_bytes=64 << 10)
    ctx = zmq.Context()
    fuzzer = _dealer(ctx, learner.data_port)
    fuzzer.setsockopt(zmq.RCVHWM, 100)
    try:
        assert _ask(fuzzer, _hello("fuzz"))[0] == "welcome"
        # without CURVE too, a batch for another actor on this connection is refused, not dropped
        assert _ask(fuzzer, _batch("real"))[0] == "refuse"
        rng = np.random.default_rng(1)
        for _ in range(2000):
            fuzzer.send_multipart(mutated_message(rng, learner.max_message_bytes))
        for _ in range(300):  # handshake refusals, and hellos that keep taking a connection
            fuzzer.send(_hello("fuzz", protocol=m.PROTOCOL_VERSION + 1))
            fuzzer.send(_hello("fuzz"))
        assert wait_until(lambda: learner.counters().get("refused", 0) == 300, 15)
        assert wait_until(lambda: learner.counters().get("bad_messages", 0) == 2001, 15)
    finally:
        fuzzer.close()
        ctx.destroy(linger=0)
        learner.close()
    lines = [r.getMessage() for r in caplog.records]
    # one line per peer and kind every 10 s (two if this ran across an interval's end)
    for kind in ("bad message", "handshake differs", "connected from"):
        assert 1 <= sum(kind in line for line in lines) <= 2, (kind, lines)


@pytest.mark.timeout(15)
def test_the_actor_logs_a_flood_of_bad_learner_messages_at_a_bounded_rate(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "serl.transport.actor")
    ctx = zmq.Context()
    fake = ctx.socket(zmq.ROUTER)  # a learner that answers garbage
    fake.setsockopt(zmq.LINGER, 0)
    data_port = fake.bind_to_random_port("tcp://127.0.0.1")
    # patient: our garbage is all it hears
    actor = make_actor((data_port, free_ports(1)[0]), "a", tmp_path / "spool",
                       settings=LinkSettings(dead_after=30))
    try:
        assert fake.poll(5000)
        rid, _ = fake.recv_multipart()
        for i in range(500):
            fake.send_multipart([rid, m.pack("ack", last_sequence=-i - 1)])
        assert wait_until(lambda: actor.counters().get("bad_messages", 0) == 500, 10)
    finally:
        actor.close()
        ctx.destroy(linger=0)
    assert 1 <= sum("bad message" in r.getMessage() for r in caplog.records) <= 2


def test_rate_limited_log_counts_what_it_holds_back(caplog):
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("serl.test"), interval=10, max_lines=3,
                             max_keys=4, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "serl.test"):
        assert limited.log(logging.INFO, "p", "from %s", "p")
        assert not any(limited.log(logging.INFO, "p", "from %s", "p") for _ in range(99))
        assert limited.log(logging.INFO, "q", "q") and limited.log(logging.INFO, "r", "r")
        assert not limited.log(logging.INFO, "s", "s")  # three lines this interval: the cap
        now[0] = 10.5
        assert limited.log(logging.INFO, "p", "from %s", "p")
        for k in range(100):  # invented keys: two more lines, and memory stays bounded
            limited.log(logging.INFO, f"k{k}", "k")
        assert len(limited._keys) <= 4 and limited.suppressed == 99 + 1 + 98
    assert [r.getMessage() for r in caplog.records] == [
        "from p", "q", "r", "from p (and 99 more like this, not logged, since the previous line)",
        "k", "k"]


def test_key_names_are_actor_ids(tmp_path, capsys):
    from serl.cli import main

    assert main(["keys", "generate", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k" / "actor" / f"{DEFAULT_ACTOR_ID}.key_secret").is_file()
    assert "acts only as that --actor.actor-id" in capsys.readouterr().out
    assert main(["keys", "add", str(tmp_path / "k"), "robot-1", "robot-2"]) == 0
    authorized = {p.stem for p in (tmp_path / "k" / "learner" / "authorized").iterdir()}
    assert authorized == {DEFAULT_ACTOR_ID, "robot-1", "robot-2"}
    assert (tmp_path / "k" / "actor" / "robot-2.key_secret").stat().st_mode & 0o077 == 0
    assert main(["keys", "add", str(tmp_path / "k"), "robot-1"]) == 1  # never overwrites a key
    assert "has a key already" in capsys.readouterr().err
    for bad in ("learner", "../x", ".hidden", ""):
        assert main(["keys", "add", str(tmp_path / "k"), bad]) == 1
    assert "cannot name an actor key" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="serl keys add DIR robot-9"):
        ActorCurve.for_actor(tmp_path / "k" / "actor", "robot-9")
    with pytest.raises(SystemExit):
        main(["keys", "generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "acts only as the actor id it is named after" in help_text
