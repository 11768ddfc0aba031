"""The in-process transport: actor and learner as threads of one process, with exactly the semantics
of the ZeroMQ transport (it is the reference that one is tested against).

The transport object stands in for both ends' durable state: the actor's spool (every unacknowledged
transition, kept until acknowledged) and the weights last published. Actor and learner objects made
from it may be dropped and made again to simulate restarts; `InProcessTransitionSource.redeliver()`
simulates the learner reconnecting.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque

from serl.transport.continuity import Continuity
from serl.transport.interfaces import (
    IncomingBatch,
    LearnerStatus,
    Params,
    Transition,
    WeightsVersion,
    check_acknowledgement,
    snapshot,
)


class _ActorLog:
    """One actor's transitions from the first unacknowledged one on, with its delivery cursor."""

    def __init__(self, first_sequence: int = 0):
        self.acked = first_sequence - 1  # highest acknowledged sequence
        self.cursor = first_sequence  # next sequence to deliver
        self.delivered = first_sequence  # one past the highest sequence ever delivered
        self.unacked: deque[Transition] = deque()  # sequences acked + 1 .. next_sequence - 1

    @property
    def next_sequence(self) -> int:
        return self.acked + 1 + len(self.unacked)


class _Ledger:
    """All actors' logs behind one lock; every method is one atomic step of the protocol."""

    def __init__(self, max_batch: int):
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._logs: dict[str, _ActorLog] = {}
        # rotates which actor is served first, so one busy actor cannot starve the others
        self._turn = 0
        self.stats: deque[dict] = deque()

    def log(self, actor_id: str, first_sequence: int = 0) -> _ActorLog:
        with self._cond:
            return self._logs.setdefault(actor_id, _ActorLog(first_sequence))

    def next_sequence(self, log: _ActorLog) -> int:
        with self._cond:
            return log.next_sequence

    def append(self, log: _ActorLog, transition: Transition) -> None:
        with self._cond:
            log.unacked.append(transition)
            self._cond.notify_all()

    def wait_acked(self, log: _ActorLog, timeout: float | None) -> bool:
        with self._cond:
            target = log.next_sequence - 1
            return self._cond.wait_for(lambda: log.acked >= target, timeout)

    def take(self, max_batches: int, timeout: float | None) -> list[IncomingBatch]:
        if max_batches < 1:
            raise ValueError(f"max_items must be >= 1, got {max_batches}")
        with self._cond:
            self._cond.wait_for(self._undelivered, timeout)
            ids = list(self._logs)
            self._turn = (self._turn + 1) % max(len(ids), 1)
            ids = ids[self._turn :] + ids[: self._turn]
            batches: list[IncomingBatch] = []
            while len(batches) < max_batches:
                round_ = [b for b in (self._next_batch(i)
                                      for i in ids[: max_batches - len(batches)]) if b]
                if not round_:
                    return batches
                batches += round_
            return batches

    def _undelivered(self) -> bool:
        return any(log.cursor < log.next_sequence for log in self._logs.values())

    def _next_batch(self, actor_id: str) -> IncomingBatch | None:
        log = self._logs[actor_id]
        start = log.cursor - log.acked - 1
        items = list(itertools.islice(log.unacked, start, start + self.max_batch))
        if not items:
            return None
        first, log.cursor = log.cursor, log.cursor + len(items)
        log.delivered = max(log.delivered, log.cursor)
        return IncomingBatch(actor_id, first, items)

    def acknowledge(self, actor_id: str, last_sequence: int) -> None:
        with self._cond:
            log = self._logs.get(actor_id)
            check_acknowledgement(actor_id, last_sequence, None if log is None else log.delivered)
            for _ in range(last_sequence - log.acked):  # nothing when repeated or lowered
                log.unacked.popleft()
            log.acked = max(log.acked, last_sequence)
            log.cursor = max(log.cursor, log.acked + 1)
            self._cond.notify_all()

    def rewind(self) -> None:
        with self._cond:
            for log in self._logs.values():
                log.cursor = log.acked + 1
            self._cond.notify_all()


class InProcessAdder:
    """`Adder` for one actor id. A new adder for the same id resumes its sequence (as an actor
    restarted over its spool does). Observations that are the previous transition's next
    observations (`pairs.Continuity`) are delivered as that transition's very copy, as the ZeroMQ
    learner rebuilds them, so the storage links the pair the same way. One actor thread."""

    def __init__(self, ledger: _Ledger, actor_id: str, first_sequence: int = 0):
        self._ledger, self._log = ledger, ledger.log(actor_id, first_sequence)
        self.actor_id = actor_id
        self._continuity, self._last_next = Continuity(), None

    def add(self, transition: Transition) -> None:
        sequence = self._ledger.next_sequence(self._log)
        previous = self._last_next is not None and self._continuity.follows(transition, sequence)
        # copied outside the lock
        copy = snapshot({k: v for k, v in transition.items()
                         if k != "observations" or not previous})
        if previous:
            copy["observations"] = self._last_next
        self._ledger.append(self._log, copy)
        self._continuity.remember(transition, sequence)
        self._last_next = copy.get("next_observations")

    def flush(self, timeout: float | None = None) -> bool:
        return self._ledger.wait_acked(self._log, timeout)

    def pending(self) -> int:
        """How many added transitions are not acknowledged yet (what a spool would hold)."""
        return len(self._log.unacked)


class InProcessStatsSink:
    """`StatsSink` for one actor id."""

    def __init__(self, ledger: _Ledger, actor_id: str):
        self._stats, self.actor_id = ledger.stats, actor_id

    def episode(self, stats: dict) -> None:
        self._stats.append({**snapshot(stats), "actor_id": self.actor_id})  # deque.append is atomic


class InProcessTransitionSource:
    """`TransitionSource` over every actor of the transport; one learner at a time."""

    def __init__(self, ledger: _Ledger):
        self._ledger = ledger

    def receive(self, max_items: int, timeout: float) -> list[IncomingBatch]:
        return self._ledger.take(max_items, timeout)

    def acknowledge(self, actor_id: str, last_sequence: int) -> None:
        self._ledger.acknowledge(actor_id, last_sequence)

    def stats(self) -> list[dict]:
        drained = []
        while self._ledger.stats:
            drained.append(self._ledger.stats.popleft())
        return drained

    def redeliver(self) -> None:
        """Simulate the learner reconnecting: every unacknowledged transition is delivered again, in
        order."""
        self._ledger.rewind()


class InProcessWeights:
    """The newest published weights: `WeightsPublisher` and `VariableSource` in one."""

    def __init__(self):
        self._cond = threading.Condition()
        self._current: tuple[WeightsVersion, Params] | None = None

    def publish(self, version: WeightsVersion, params: Params) -> None:
        if not isinstance(version, WeightsVersion):
            raise TypeError(f"version must be a WeightsVersion, got {type(version).__name__}")
        params = snapshot(params)  # copied outside the lock, so readers never wait on it
        with self._cond:
            if self._current is not None and version <= self._current[0]:
                raise ValueError(f"publish {version} is not newer than {self._current[0]}")
            self._current = (version, params)
            self._cond.notify_all()

    def latest(self) -> tuple[WeightsVersion, Params] | None:
        return self._current  # one attribute read, atomic: no lock, so it never blocks

    def wait_until(self, predicate, timeout: float | None) -> bool:
        """Wait until `predicate(self.latest())` holds (checked at each publish); False
        on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._current), timeout)


class InProcessStatus:
    """The learner's newest status: `StatusPublisher` and `StatusSource` in one."""

    def __init__(self):
        self._current: tuple[float, LearnerStatus] | None = None

    def publish_status(self, status: LearnerStatus) -> None:
        self._current = (time.monotonic(), status)  # one reference assignment

    def learner_status(self) -> tuple[float, LearnerStatus] | None:
        return self._current


class InProcessVariableClient:
    """`VariableClient` reading a `InProcessWeights`."""

    def __init__(self, box: InProcessWeights):
        self._box = box
        self._last: WeightsVersion | None = None

    def _newer(self, current) -> bool:
        return current is not None and (self._last is None or current[0] > self._last)

    def poll(self) -> tuple[WeightsVersion, Params] | None:
        current = self._box.latest()
        if not self._newer(current):
            return None
        self._last = current[0]
        return current

    def wait(self, timeout: float) -> tuple[WeightsVersion, Params] | None:
        self._box.wait_until(self._newer, timeout)
        return self.poll()


class InProcessTransport:
    """Both ends of the transport in one process. Make the actor side with `adder`, `stats_sink` and
    `variable_client`; the learner side with `transition_source` and `publisher` (also
    `variable_source`)."""

    def __init__(self, max_batch: int = 64):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._ledger = _Ledger(max_batch)
        self._weights = InProcessWeights()
        self.status = InProcessStatus()  # both ends of the learner's status

    def adder(self, actor_id: str, first_sequence: int = 0) -> InProcessAdder:
        """The actor's adder; `first_sequence` continues an actor whose earlier transitions the
        learner already stored (a resumed single-process run), so they are not mistaken for
        duplicates."""
        return InProcessAdder(self._ledger, actor_id, first_sequence)

    def stats_sink(self, actor_id: str) -> InProcessStatsSink:
        return InProcessStatsSink(self._ledger, actor_id)

    def variable_client(self) -> InProcessVariableClient:
        return InProcessVariableClient(self._weights)

    def transition_source(self) -> InProcessTransitionSource:
        return InProcessTransitionSource(self._ledger)

    def publisher(self) -> InProcessWeights:
        return self._weights

    def variable_source(self) -> InProcessWeights:
        return self._weights
