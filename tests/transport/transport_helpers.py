"""Shared pieces of the ZeroMQ transport tests: a small spec, deterministic transitions, fast link
settings, and a learner-side stand-in that "stores" into a dict with per-actor watermarks (as the
replay storage does) and acks."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from serl.data import TransitionSpec
from serl.transport.actor_link import LinkSettings
from serl.transport.frames import FrameCodec
from serl.transport.messages import spec_info
from serl.transport.zmq_actor import ZmqActorTransport
from serl.transport.zmq_learner import ZmqLearnerTransport

SPEC = TransitionSpec({"state": ((5,), np.float32), "front": ((16, 16, 3), np.uint8),
                       "wrist": ((16, 16, 3), np.uint8)}, 3)
INFO = spec_info(SPEC, agent_config="cfg-hash-1")
FAST = LinkSettings(heartbeat_interval=0.1, dead_after=0.6, backoff_initial=0.05, backoff_max=0.3,
                    max_batch=16)


def observation(i: int) -> dict:
    """Observation number i; frames vary smoothly with i (so JPEG is meaningful)."""
    ramp = (np.arange(16, dtype=np.int64)[:, None] * 8 + np.arange(16)[None, :] * 4 + 3 * i) % 256
    frame = np.repeat(ramp[:, :, None], 3, axis=2).astype(np.uint8)
    return {"state": np.full(5, i, np.float32), "front": frame, "wrist": frame[::-1].copy()}


def transition(i: int, episode: int = 0) -> dict:
    """Transition i: observation i -> observation i + 1 (the very arrays the next transition starts
    from)."""
    return {"observations": observation(i), "next_observations": observation(i + 1),
            "actions": np.full(3, i % 7 / 7, np.float32), "rewards": np.float32(i),
            "masks": np.float32(1), "dones": np.bool_(False), "intervened": np.bool_(i % 5 == 0),
            "grasp_penalty": np.float32(0), "episode_id": np.int64(episode), "step": np.int32(i),
            "policy_version": np.array([0, i], np.int64), "classifier_version": np.int32(0),
            "timestamp": np.float64(i)}


def make_learner(data_port: int = 0, weights_port: int = 0, info: dict = INFO,
                 bind_host: str = "127.0.0.1", **kw) -> ZmqLearnerTransport:
    kw.setdefault("actor_timeout", 1.5)
    return ZmqLearnerTransport(SPEC, info, bind_host, data_port, weights_port, **kw)


def make_actor(learner_or_ports, actor_id: str, spool: Path, info: dict = INFO,
               **kw) -> ZmqActorTransport:
    ports = learner_or_ports if isinstance(learner_or_ports,
                                           tuple) else (learner_or_ports.data_port,
                                                        learner_or_ports.weights_port)
    kw.setdefault("frames", FrameCodec(None))
    kw.setdefault("settings", FAST)
    return ZmqActorTransport("127.0.0.1", *ports, actor_id, SPEC, info, spool, **kw)


class StandIn:
    """The learner loop's stand-in: receives, stores new transitions by (actor, sequence) behind
    per-actor watermarks (so redeliveries are dropped, as by the storage), acknowledges. Survives
    learner restarts."""

    def __init__(self):
        self.store: dict[tuple[str, int], dict] = {}
        self.watermarks: dict[str, int] = {}
        self.duplicates = 0
        self.invalid = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, source) -> StandIn:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self, source) -> None:
        while not self._stop.is_set():
            for batch in source.receive(16, 0.05):
                mark = self.watermarks.get(batch.actor_id, -1)
                for k, t in enumerate(batch.transitions):
                    sequence = batch.first_sequence + k
                    if sequence <= mark:
                        self.duplicates += 1
                    elif SPEC.structure_problems(t):
                        self.invalid += 1
                    else:
                        self.store[(batch.actor_id, sequence)] = t
                self.watermarks[batch.actor_id] = max(mark, batch.last_sequence)
                source.acknowledge(batch.actor_id, batch.last_sequence)

    def sequences(self, actor_id: str) -> list[int]:
        return sorted(s for a, s in self.store if a == actor_id)


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
