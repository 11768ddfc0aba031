"""The learner side's bookkeeping per actor: what arrived, what the learner loop took, what it
acknowledged.

The I/O thread `offer`s decoded batches; the learner loop `take`s them and `acknowledge`s. Within
one learner process every sequence is handed to the loop once (resends after an actor reconnects are
trimmed to what is new); after a learner restart the actors resend everything unacknowledged, and
the storage drops what it already has.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from dataclasses import dataclass, field

from serl.transport.interfaces import IncomingBatch, Transition, check_acknowledgement


class Offer(enum.Enum):
    """What became of an offered batch, and what the I/O thread answers."""

    QUEUED = "queued"  # new transitions queued for the learner loop
    # nothing new, not yet acknowledged: the ack follows when the loop acknowledges
    OVERLAP = "overlap"
    DUPLICATE = "duplicate"  # already acknowledged: acknowledge again so the actor trims
    # starts past what arrived (a message was lost): the actor must resend from its watermark
    GAP = "gap"
    # the loop is too far behind (the actor ignored its window): the actor must resend later
    FULL = "full"


@dataclass
class _Actor:
    acked: int = -1  # highest sequence the loop acknowledged
    # one past the highest sequence queued (None: nothing known yet)
    received_end: int | None = None
    delivered_end: int = 0  # one past the highest sequence the loop took
    queue: deque[IncomingBatch] = field(default_factory=deque)


class Ledger:
    """All actors' state behind one condition variable; each method is one atomic step."""

    def __init__(self, max_queued_batches: int = 256):
        self.max_queued_batches = max_queued_batches
        self._cond = threading.Condition()
        self._actors: dict[str, _Actor] = {}
        # rotates which actor is served first, so a busy actor cannot starve the others
        self._turn = 0

    def hello(self, actor_id: str, resume_from: int) -> int:
        """An actor (re)connected and will send from `resume_from`; returns what is acknowledged for
        it (-1)."""
        with self._cond:
            actor = self._actors.setdefault(actor_id, _Actor())
            actor.received_end = max(actor.received_end or 0, resume_from)
            return actor.acked

    def offer(self, actor_id: str, first: int, transitions: list[Transition]) -> Offer:
        """Queue the part of sequences first.. that is new (see `Offer`)."""
        with self._cond:
            actor = self._actors.setdefault(actor_id, _Actor())
            last = first + len(transitions) - 1
            if last <= actor.acked:
                return Offer.DUPLICATE
            end = first if actor.received_end is None else actor.received_end
            if first > end:
                return Offer.GAP
            if last < end:
                return Offer.OVERLAP
            if len(actor.queue) >= self.max_queued_batches:
                return Offer.FULL
            actor.queue.append(IncomingBatch(actor_id, end, transitions[end - first:]))
            actor.received_end = last + 1
            self._cond.notify_all()
            return Offer.QUEUED

    def take(self, max_batches: int, timeout: float | None) -> list[IncomingBatch]:
        """Up to `max_batches` batches, round-robin over actors, waiting up to `timeout` for the
        first."""
        if max_batches < 1:
            raise ValueError(f"max_items must be >= 1, got {max_batches}")
        with self._cond:
            self._cond.wait_for(lambda: any(a.queue for a in self._actors.values()), timeout)
            ids = list(self._actors)
            self._turn = (self._turn + 1) % max(len(ids), 1)
            ids = ids[self._turn:] + ids[:self._turn]
            out: list[IncomingBatch] = []
            while len(out) < max_batches:
                queues = [q for q in (self._actors[i].queue for i in ids) if q]
                if not queues:
                    break
                out += [q.popleft() for q in queues[:max_batches - len(out)]]
            for batch in out:
                actor = self._actors[batch.actor_id]
                actor.delivered_end = max(actor.delivered_end, batch.last_sequence + 1)
            return out

    def acknowledge(self, actor_id: str, last_sequence: int) -> bool:
        """Record the loop's acknowledgement; True if it moved the watermark (so the actor must hear
        of it)."""
        with self._cond:
            actor = self._actors.get(actor_id)
            check_acknowledgement(actor_id, last_sequence,
                                  None if actor is None else actor.delivered_end)
            if last_sequence <= actor.acked:
                return False
            actor.acked = last_sequence
            return True

    def acked(self, actor_id: str) -> int:
        with self._cond:
            actor = self._actors.get(actor_id)
            return -1 if actor is None else actor.acked
