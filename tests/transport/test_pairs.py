"""Each camera frame once, end to end over real ZeroMQ on loopback into a real `ReplayStorage`
(through the learner's `Intake`): a transition whose observations are its predecessor's next
observations travels as a reference, and the learner rebuilds the pair exactly, across batches,
learner restarts and actor reconnects; a bad predecessor costs only itself, a forged reference is
dropped and named, and a camera that refills one buffer in place never yields stale frames."""

import logging

import msgpack
import numpy as np
import pytest
from transport_helpers import SPEC, make_actor, make_learner, observation, transition, wait_until

from serl.actor.frames import FrameView, RoundtripAdder
from serl.data import ReplayStorage
from serl.learner.config import LearnerConfig
from serl.learner.intake import DiskErrors, Intake, merged
from serl.transport.codec import TransitionCodec
from serl.transport.frames import FrameCodec
from serl.transport.inprocess import InProcessTransport
from serl.transport.interfaces import IncomingBatch


def episode(n: int, episode_id: int = 0, first: int = 0) -> list[dict]:
    """Steps first.. of an episode as an actor loop makes them: each transition's observations are
    the very dict its predecessor was given as next observations."""
    obs = [observation(100 * episode_id + i) for i in range(first, first + n + 1)]
    out = []
    for k in range(n):
        t = transition(first + k, episode_id)
        t["observations"], t["next_observations"] = obs[k], obs[k + 1]
        out.append(t)
    return out


def intake(source, run_dir) -> Intake:
    cfg = LearnerConfig(buffer_capacity=10_000, buffer_chunk_size=64)
    return Intake(source, SPEC, cfg, run_dir, DiskErrors("stop", lambda: None), {})


def drain(stores: Intake, adder, timeout: float = 15) -> None:
    """Ingest until the actor's every transition is acknowledged."""
    assert wait_until(lambda: stores.ingest(0.05) >= 0 and adder.pending() == 0, timeout)


def stored(storage: ReplayStorage) -> dict[int, dict]:
    """Sequence -> stored transition (frames included)."""
    index = np.arange(len(storage))
    batch = storage.get(index)
    sequences = [s for _, s in storage.origins(index)]
    return {s: {top: {k: v[i] for k, v in batch[top].items()}
                for top in ("observations", "next_observations")}
            for i, s in enumerate(sequences)}


def assert_pairs(storage: ReplayStorage, sent: dict[int, dict], quality=None) -> None:
    """Every stored transition carries exactly the frames and state it was sent with."""
    got = stored(storage)
    assert sorted(got) == sorted(sent)
    for s, t in sent.items():
        for top in ("observations", "next_observations"):
            for k, v in t[top].items():
                want = v if quality is None or v.dtype != np.uint8 else FrameCodec(
                    quality).roundtrip(v)
                np.testing.assert_array_equal(got[s][top][k], want, err_msg=f"{s} {top}/{k}")


@pytest.mark.timeout(60)
def test_references_resolve_across_batches_restarts_and_reconnects(tmp_path):
    learner = make_learner()
    ports = (learner.data_port, learner.weights_port)
    stores = intake(learner, tmp_path / "run")
    actor = make_actor(learner, "a", tmp_path / "spool")
    steps = episode(60)
    sent = dict(enumerate(steps))
    try:
        adder = actor.adder()
        for t in steps[:40]:  # several batches of 16
            adder.add(t)
        # spooled (and sent): a reference is about half a full record
        sizes = [len(record) for _, record in actor.spool.read(0, 40, 1 << 30)]
        assert len(sizes) == 40 and max(sizes[1:]) < 0.6 * sizes[0]
        drain(stores, adder)
        # the learner restarts mid-episode: step 40's reference is resolved from the storage
        stores.close()
        learner.close()
        learner = make_learner(*ports)
        stores = intake(learner, tmp_path / "run")
        for t in steps[40:50]:
            adder.add(t)
        drain(stores, adder)
        # the actor dies with steps it never had acknowledged; restarted, it resends them
        for t in steps[50:]:
            adder.add(t)
        actor.close()
        actor = make_actor(learner, "a", tmp_path / "spool")
        drain(stores, actor.adder())
        assert stores.invalid_transitions == 0
        assert_pairs(stores.online, sent)
        assert stores.online.n_slots == 61  # one slot per distinct observation
    finally:
        actor.close()
        stores.close()
        learner.close()


class KilledBetweenBuffers(Exception):
    pass


def kill_between_buffers(point: str) -> None:
    """The fault seam (`serl.faults.fault_point`), in-process: the learner dies at that point."""
    if point == "between_buffers":
        raise KilledBetweenBuffers


@pytest.mark.timeout(60)
def test_a_learner_killed_between_its_two_writes_completes_both_from_the_resent_batch(
        tmp_path, monkeypatch):
    import serl.learner.intake as intake_module

    learner = make_learner()
    ports = (learner.data_port, learner.weights_port)
    stores = intake(learner, tmp_path / "run")
    actor = make_actor(learner, "a", tmp_path / "spool")
    steps = episode(50)  # every fifth step is an intervention step, 40 among them
    try:
        adder = actor.adder()
        for t in steps[:40]:
            adder.add(t)
        drain(stores, adder)
        monkeypatch.setattr(intake_module, "fault_point", kill_between_buffers)
        for t in steps[40:]:  # a batch that opens with an intervention step
            adder.add(t)
        with pytest.raises(KilledBetweenBuffers):
            wait_until(lambda: stores.ingest(0.05) < 0, 15)
        monkeypatch.undo()
        stores.close()
        learner.close()
        # restarted, it gets the batch again, step 40 as a reference to step 39's frames
        learner = make_learner(*ports)
        stores = intake(learner, tmp_path / "run")
        drain(stores, adder)
        assert stores.invalid_transitions == 0
        assert_pairs(stores.online, dict(enumerate(steps)))
        assert_pairs(stores.demo, {s: t for s, t in enumerate(steps) if s % 5 == 0})
    finally:
        actor.close()
        stores.close()
        learner.close()


@pytest.mark.timeout(60)
def test_a_bad_predecessor_costs_only_itself_and_a_forged_reference_is_dropped_and_named(
        tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    learner = make_learner()
    stores = intake(learner, tmp_path / "run")
    actor = make_actor(learner, "a", tmp_path / "spool")
    codec = TransitionCodec(SPEC, FrameCodec(None))
    steps = episode(12)
    steps[4]["rewards"] = np.float32(np.nan)  # well-formed on the wire, invalid for storage
    try:
        adder = actor.adder()
        for t in steps[:8]:
            adder.add(t)
        # a record whose reference names the wrong step: sequence 7 is episode 0 step 7
        forged = transition(30, episode=5)
        actor.spool.add(codec.encode(forged, previous=True))
        # sequence 9 refers to sequence 8, whose frames do not decode: it cannot be resolved
        broken = msgpack.unpackb(codec.encode(steps[8]), raw=False)
        broken["next_observations"]["front"] = b"not a frame"
        actor.spool.add(msgpack.packb(broken, use_bin_type=True))
        actor.spool.add(codec.encode(steps[9], previous=True))
        for t in steps[10:]:  # the chain starts afresh after the forgery
            adder.add(t)
        drain(stores, adder)
        # 4 (NaN) is dropped, 5 refers to it and is stored; 11, 12 are steps 10, 11 again
        sent = {s: steps[s] for s in (0, 1, 2, 3, 5, 6, 7)} | {11: steps[10], 12: steps[11]}
        assert_pairs(stores.online, sent)
        # 4 (NaN), 8 (forged), 9 (undecodable), 10 (its predecessor's frames never arrived)
        assert stores.invalid_transitions == 4
        assert learner.counters()["bad_transitions"] == 2
    finally:
        actor.close()
        stores.close()
        learner.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "observations refer to sequence 7, which is episode 0, step 7" in logged
    assert "observations refer to transition 9 (episode 0, step 8), a step this buffer does not " \
           "hold" in logged


def camera_steps(n: int, refill_every: int = 2):
    """(observations, next_observations) of each step of an actor loop whose front camera refills
    one buffer in place every `refill_every` steps (in between it delivered no new frame)."""
    buffer = observation(0)["front"].copy()
    obs = {"state": np.zeros(5, np.float32), "front": buffer, "wrist": observation(0)["wrist"]}
    for k in range(n):
        if k % refill_every == 0:  # after the previous transition was added
            buffer[:] = observation(k + 1)["front"]
        nxt = {"state": np.full(5, k + 1, np.float32), "front": buffer,
               "wrist": observation(k + 1)["wrist"]}
        yield obs, nxt
        obs = nxt


def run_actor(adder, view: FrameView, n: int) -> dict[int, dict]:
    """Act and add like the actor loop (the policy sees each observation first); returns what each
    transition held when it was added."""
    sent = {}
    for k, (obs, nxt) in enumerate(camera_steps(n)):
        view.observation(obs)  # the policy's view of it (one JPEG per frame, shared with the wire)
        t = transition(k) | {"observations": obs, "next_observations": nxt}
        sent[k] = {top: {key: v.copy() for key, v in t[top].items()}
                   for top in ("observations", "next_observations")}
        adder.add(t)
    return sent


@pytest.mark.timeout(60)
def test_in_place_camera_buffers_never_yield_stale_frames_and_one_process_stores_the_same(
        tmp_path):
    view = FrameView(FrameCodec(90), SPEC.camera_keys)
    learner = make_learner()
    stores = intake(learner, tmp_path / "zmq")
    actor = make_actor(learner, "a", tmp_path / "spool", frames=view.codec, frame_cache=view.cache)
    try:
        sent = run_actor(actor.adder(), view, 30)
        drain(stores, actor.adder())
        assert_pairs(stores.online, sent, quality=90)
        two_process = stores.online.provenance(np.arange(30))[1]
        frames = stores.online.get(np.arange(30))
    finally:
        actor.close()
        stores.close()
        learner.close()
    transport, view = InProcessTransport(max_batch=16), FrameView(FrameCodec(90), SPEC.camera_keys)
    stores = intake(transport.transition_source(), tmp_path / "inprocess")
    try:
        adder = RoundtripAdder(transport.adder("a"), view)
        run_actor(adder, view, 30)
        drain(stores, adder)
        one_process = stores.online.provenance(np.arange(30))[1]
        for top in ("observations", "next_observations"):
            for key, value in stores.online.get(np.arange(30))[top].items():
                np.testing.assert_array_equal(value, frames[top][key])
        # the same pairs linked the same way: a new slot for each refilled frame only
        for name in ("obs_slot", "next_slot"):
            np.testing.assert_array_equal(one_process[name], two_process[name])
        assert stores.online.n_slots == 30 + 15
    finally:
        stores.close()


@pytest.mark.timeout(10)
def test_intake_joins_each_actors_consecutive_batches_and_keeps_their_order():
    def batch(actor, first, n):
        return IncomingBatch(actor, first, [first + k for k in range(n)])

    joined = merged([batch("a", 0, 64), batch("b", 0, 10), batch("a", 64, 64), batch("a", 128, 5),
                     batch("b", 20, 5), batch("b", 25, 5)])
    assert [(b.actor_id, b.first_sequence, len(b.transitions)) for b in joined] == [
        ("a", 0, 128), ("b", 0, 10), ("a", 128, 5), ("b", 20, 10)]
    assert joined[0].transitions == list(range(128))
