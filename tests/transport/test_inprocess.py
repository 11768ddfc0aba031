"""The in-process transport against the contracts of `serl.transport.interfaces`."""

import threading
import time

import numpy as np
import pytest

from serl.transport import (
    Adder,
    InProcessTransport,
    StatsSink,
    TransitionSource,
    VariableClient,
    VariableSource,
    WeightsPublisher,
    WeightsVersion,
)
from serl.transport.fakes import RecordingAdder, RecordingStatsSink, ScriptedVariableClient


def _transition(i: int) -> dict:
    return {"observations": {"state": np.full(3, i, np.float32)}, "rewards": np.float32(i),
            "step": i}


def _drain(source, max_items=1000) -> list:
    return source.receive(max_items, timeout=0)


def _sequences(batches, actor_id) -> list[int]:
    return [b.first_sequence + k for b in batches if b.actor_id == actor_id
            for k in range(len(b.transitions))]


@pytest.mark.timeout(5)
def test_weights_version_orders_incarnation_first():
    assert WeightsVersion(1, 0) > WeightsVersion(0, 10**6)
    assert WeightsVersion(0, 2) > WeightsVersion(0, 1)
    assert WeightsVersion.from_array(WeightsVersion(3, 7).to_array()) == WeightsVersion(3, 7)
    assert WeightsVersion(np.int64(2), np.int32(5)) == WeightsVersion(2, 5)
    with pytest.raises(ValueError):
        WeightsVersion.from_array(np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        WeightsVersion(-1, 0)


@pytest.mark.timeout(5)
def test_objects_satisfy_the_interfaces():
    transport = InProcessTransport()
    assert isinstance(transport.adder("a"), Adder)
    assert isinstance(transport.stats_sink("a"), StatsSink)
    assert isinstance(transport.variable_client(), VariableClient)
    assert isinstance(transport.transition_source(), TransitionSource)
    assert isinstance(transport.publisher(), WeightsPublisher)
    assert isinstance(transport.variable_source(), VariableSource)
    for fake, interface in [(RecordingAdder(), Adder), (RecordingStatsSink(), StatsSink),
                            (ScriptedVariableClient(), VariableClient)]:
        assert isinstance(fake, interface)


@pytest.mark.timeout(5)
def test_poll_returns_only_strictly_newer_and_never_blocks():
    transport = InProcessTransport()
    publisher, client = transport.publisher(), transport.variable_client()
    assert client.poll() is None
    publisher.publish(WeightsVersion(0, 1), {"w": np.ones(2)})
    version, params = client.poll()
    assert version == WeightsVersion(0, 1) and np.array_equal(params["w"], np.ones(2))
    assert client.poll() is None
    with pytest.raises(ValueError):
        publisher.publish(WeightsVersion(0, 1), {"w": np.zeros(2)})
    # restored learner: new incarnation wins
    publisher.publish(WeightsVersion(1, 0), {"w": np.zeros(2)})
    assert client.poll()[0] == WeightsVersion(1, 0)
    assert transport.variable_source().latest()[0] == WeightsVersion(1, 0)

    holding = threading.Event()
    release = threading.Event()

    def hold_the_weights_lock():  # a publisher stuck mid-publish must not stall the control loop
        transport.publisher().wait_until(lambda _: holding.set() or release.wait(5), None)

    holder = threading.Thread(target=hold_the_weights_lock)
    holder.start()
    assert holding.wait(2)
    start = time.perf_counter()
    results = [client.poll() for _ in range(1000)]
    elapsed = time.perf_counter() - start
    release.set()
    holder.join()
    assert results == [None] * 1000
    assert elapsed < 0.05


@pytest.mark.timeout(5)
def test_published_params_are_a_readonly_snapshot():
    transport = InProcessTransport()
    params = {"w": np.ones(2)}
    transport.publisher().publish(WeightsVersion(0, 0), params)
    params["w"][:] = 5  # the learner keeps training in place
    _, received = transport.variable_client().poll()
    assert np.array_equal(received["w"], np.ones(2))
    with pytest.raises(ValueError):
        received["w"][0] = 3


@pytest.mark.timeout(5)
def test_wait_times_out_then_returns_a_publish_from_another_thread():
    transport = InProcessTransport()
    client = transport.variable_client()
    start = time.monotonic()
    assert client.wait(0.2) is None
    assert 0.2 <= time.monotonic() - start < 1.0

    timer = threading.Timer(0.1, transport.publisher().publish, (WeightsVersion(0, 3),
                                                                 {"w": np.zeros(1)}))
    timer.start()
    start = time.monotonic()
    got = client.wait(3.0)
    timer.join()
    assert got is not None and got[0] == WeightsVersion(0, 3)
    assert time.monotonic() - start < 1.0
    assert client.wait(0.05) is None  # nothing newer than what it returned


@pytest.mark.timeout(5)
def test_sequences_are_consecutive_per_actor_and_independent():
    transport = InProcessTransport(max_batch=3)
    a, b, source = transport.adder("a"), transport.adder("b"), transport.transition_source()
    for i in range(5):
        a.add(_transition(i))
    for i in range(3):
        b.add(_transition(100 + i))
    a.add(_transition(5))
    batches = _drain(source)
    assert all(1 <= len(batch.transitions) <= 3 for batch in batches)
    assert _sequences(batches, "a") == list(range(6))
    assert _sequences(batches, "b") == list(range(3))
    for batch in batches:
        steps = [t["step"] for t in batch.transitions]
        offset = 0 if batch.actor_id == "a" else 100
        assert steps == list(range(batch.first_sequence + offset, batch.last_sequence + offset + 1))
    assert source.receive(10, timeout=0) == []
    # A restarted actor (new adder, same id) continues its numbering.
    transport.adder("a").add(_transition(6))
    assert _sequences(_drain(source), "a") == [6]


@pytest.mark.timeout(5)
def test_receive_waits_for_the_first_batch_and_caps_the_count():
    transport = InProcessTransport(max_batch=2)
    source, adder = transport.transition_source(), transport.adder("a")
    start = time.monotonic()
    assert source.receive(5, timeout=0.1) == []
    assert time.monotonic() - start >= 0.1
    threading.Timer(0.1, adder.add, (_transition(0),)).start()
    assert _sequences(source.receive(5, timeout=3.0), "a") == [0]
    for i in range(1, 9):
        adder.add(_transition(i))
    assert len(source.receive(2, timeout=0)) == 2


@pytest.mark.timeout(5)
def test_added_transitions_are_a_snapshot():
    transport = InProcessTransport()
    transition = _transition(1)
    transport.adder("a").add(transition)
    transition["observations"]["state"][:] = -1  # the env reuses its buffers
    (batch,) = _drain(transport.transition_source())
    assert np.array_equal(batch.transitions[0]["observations"]["state"], np.ones(3))


@pytest.mark.timeout(5)
def test_flush_is_true_only_after_acknowledgement():
    transport = InProcessTransport()
    adder, source = transport.adder("a"), transport.transition_source()
    assert adder.flush(0)  # nothing added yet
    for i in range(3):
        adder.add(_transition(i))
    assert not adder.flush(0.1)
    batches = _drain(source)
    source.acknowledge("a", 1)
    assert not adder.flush(0.05) and adder.pending() == 1

    timer = threading.Timer(0.1, source.acknowledge, ("a", batches[-1].last_sequence))
    timer.start()
    assert adder.flush(3.0)
    timer.join()
    assert adder.pending() == 0
    with pytest.raises(ValueError):
        source.acknowledge("a", 3)  # never delivered
    with pytest.raises(ValueError):
        source.acknowledge("nobody", 0)


@pytest.mark.timeout(5)
def test_redeliver_sends_only_unacknowledged_in_order():
    transport = InProcessTransport(max_batch=4)
    adder, source = transport.adder("a"), transport.transition_source()
    for i in range(10):
        adder.add(_transition(i))
    first = _drain(source)
    assert [(b.first_sequence, b.last_sequence) for b in first] == [(0, 3), (4, 7), (8, 9)]
    source.acknowledge("a", 3)
    source.redeliver()
    again = _drain(source)
    assert [(b.first_sequence, b.last_sequence) for b in again] == [(4, 7), (8, 9)]
    assert [t["step"] for b in again for t in b.transitions] == list(range(4, 10))
    source.acknowledge("a", 7)
    source.acknowledge("a", 5)  # stale acknowledgement: a no-op
    source.redeliver()
    assert _sequences(_drain(source), "a") == [8, 9]
    source.acknowledge("a", 9)
    source.redeliver()
    assert _drain(source) == []
    assert adder.flush(0)


@pytest.mark.timeout(15)
def test_two_actors_and_a_learner_lose_and_duplicate_nothing():
    transport = InProcessTransport(max_batch=16)
    per_actor, actor_ids = 1000, ("left", "right")
    stored: dict[str, list] = {a: [] for a in actor_ids}
    # what the learner's storage records beside each appended batch
    watermark = {a: -1 for a in actor_ids}
    done, flushed, errors, dropped = threading.Event(), {}, [], [0]

    def actor(actor_id):
        adder, client = transport.adder(actor_id), transport.variable_client()
        for i in range(per_actor):
            adder.add({"step": i, "actor": actor_id})
            client.poll()
        flushed[actor_id] = adder.flush(5.0)

    def store(batch) -> None:
        """The learner's durable append: drop what an earlier delivery already stored, never skip a
        sequence."""
        skip = watermark[batch.actor_id] + 1 - batch.first_sequence
        assert skip >= 0, f"gap before {batch.first_sequence} for {batch.actor_id}"
        dropped[0] += min(skip, len(batch.transitions))
        stored[batch.actor_id] += batch.transitions[skip:]
        watermark[batch.actor_id] = max(watermark[batch.actor_id], batch.last_sequence)

    def learner():
        source, publisher, n, published = transport.transition_source(), transport.publisher(), 0, 0
        try:
            while not done.is_set():
                for batch in source.receive(8, timeout=0.01):
                    store(batch)
                    n += 1
                    # crash after storing this batch, before acknowledging it or storing the rest
                    if n == 20:
                        source.redeliver()
                        break
                    source.acknowledge(batch.actor_id, batch.last_sequence)
                if n > published:
                    publisher.publish(WeightsVersion(0, n), {"w": np.full(4, n)})
                    published = n
        except Exception as error:  # reported by the main thread, where pytest sees it
            errors.append(error)

    threads = [threading.Thread(target=actor, args=(a,)) for a in actor_ids]
    learner_thread = threading.Thread(target=learner)
    for thread in [learner_thread, *threads]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    learner_thread.join()
    assert errors == []
    # the restart made the learner see some transitions twice, and it kept them once
    assert dropped[0] > 0
    assert flushed == {a: True for a in actor_ids}
    for a in actor_ids:
        assert [t["step"] for t in stored[a]] == list(range(per_actor))
        assert {t["actor"] for t in stored[a]} == {a}


@pytest.mark.timeout(5)
def test_episode_stats_flow_to_the_learner():
    transport = InProcessTransport()
    source = transport.transition_source()
    transport.stats_sink("a").episode({"return": 1.5, "length": 40, "success": True,
                                       "intervention_rate": 0.25})
    transport.stats_sink("b").episode({"return": 0.0, "length": 100, "success": False})
    stats = source.stats()
    assert [(s["actor_id"], s["return"],
             s["success"]) for s in stats] == [("a", 1.5, True), ("b", 0.0, False)]
    assert stats[0]["intervention_rate"] == 0.25
    assert source.stats() == []
