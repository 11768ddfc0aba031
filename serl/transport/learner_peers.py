"""The learner's side of the actor protocol, one message at a time: which connection is which actor,
what each actor message means, and what is answered. Used only by the learner's I/O thread
(`zmq_learner`), which owns the sockets and hands each received message to `LearnerPeers.handle`.

Each actor's transitions are decoded in sequence order by `pairs.Predecessors`, which rebuilds a
transition's observations from its predecessor's next observations when the record refers to them.
A bad message raises `BadMessage`; the I/O thread counts it (`bad`) and keeps serving. With CURVE
(`bound_keys`), every message must come from a connection whose key is named after the actor id it
acts for (`serl.transport.security`); any other is refused with a `refuse` reply and changes
nothing. Lines about peers are rate-limited (`RateLimitedLog`): a flood is counted, not logged.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serl.data.intake import INVALID
from serl.transport import messages as m
from serl.transport.codec import TransitionCodec
from serl.transport.interfaces import Params, WeightsVersion
from serl.transport.learner_ledger import Ledger, Offer
from serl.transport.pairs import Predecessors
from serl.transport.rate_log import RateLimitedLog
from serl.transport.security import identity_refusal
from serl.transport.wire import BadMessage

log = logging.getLogger("serl.transport.learner")

# (newest published weights or None, their encoded "weights" message or None)
Published = tuple[tuple[WeightsVersion, Params] | None, bytes | None]


@dataclass(frozen=True)
class Peer:
    """Who sent a message, as ZeroMQ reports it."""

    rid: bytes  # the ROUTER's routing id of the connection
    key_name: str | None = None  # the actor name of its CURVE key (ZAP User-Id); None without
    address: str | None = None  # its IP address (ZeroMQ's Peer-Address), for the log


class LearnerPeers:
    """Connections by routing id, and the answer to each actor message.

    `send_raw(rid, data)` sends one message to a connection; `published()` reads the newest weights,
`status()` the newest encoded `status` message (None: none yet).
    `counters` and `stats` are the transport's own (shared, written here). `bound_keys`: CURVE is
    on, so each connection may act only as its key's name.
    """

    def __init__(self, info: dict[str, Any], codec: TransitionCodec, ledger: Ledger,
                 counters: Counter[str], stats: deque, send_raw: Callable[[bytes, bytes], None],
                 published: Callable[[], Published], max_message_bytes: int, actor_timeout: float,
                 bound_keys: bool = False, log_interval: float = 10.0,
                 status: Callable[[], bytes | None] = lambda: None):
        self.info, self.max_message_bytes = info, max_message_bytes
        self.actor_timeout, self.bound_keys = actor_timeout, bound_keys
        self._pairs, self._ledger, self._counters, self._stats = (Predecessors(codec), ledger,
                                                                  counters, stats)
        self._send_raw, self._published = send_raw, published
        # the newest `status` message, sent after each heartbeat reply
        self._status = status
        self._peers: dict[bytes, str] = {}  # routing id -> actor id, for actors that said hello
        self._last_seen: dict[bytes, float] = {}
        self.log = RateLimitedLog(log, log_interval)

    # ---------- connections ----------
    def actor_ids(self) -> list[str]:
        """Actor ids with a live connection (said hello, heartbeating)."""
        # copy: atomic, while the I/O thread may be changing it
        return sorted(set(self._peers.copy().values()))

    def routes(self, actor_id: str) -> list[bytes]:
        """The routing ids of `actor_id`'s connections."""
        return [rid for rid, a in self._peers.items() if a == actor_id]

    def release_silent(self) -> None:
        """Forget connections that stopped heartbeating for `actor_timeout` seconds."""
        deadline = time.monotonic() - self.actor_timeout
        for rid in [r for r, t in self._last_seen.items() if t < deadline]:
            actor_id = self._peers.get(rid)
            self.log.log(logging.WARNING, ("released", actor_id),
                         "actor %r stopped heartbeating; released its connection", actor_id)
            self._counters["released"] += 1
            self._forget(rid)

    def _forget(self, rid: bytes) -> None:
        self._peers.pop(rid, None)
        self._last_seen.pop(rid, None)

    # ---------- messages ----------
    def handle(self, peer: Peer, frames: list) -> None:
        """Act on one message (its frames after the routing id) from `peer`; BadMessage if it is
        bad."""
        if len(frames) != 1:
            raise BadMessage("envelope", f"{len(frames)} frames, expected 1")
        kind, message = m.parse(frames[0], m.ACTOR_MESSAGES, self.max_message_bytes)
        if kind == "hello":
            return self._on_hello(peer, message)
        actor_id = self._peers.get(peer.rid)
        if actor_id is None:  # e.g. an actor that has not noticed this learner restarted
            self._counters["unknown_peers"] += 1
            return self._send(peer.rid, "reset", reason="unknown peer: say hello first")
        reason = self._identity_problem(peer, actor_id, message.get("actor_id", actor_id), kind)
        if reason is not None:
            self._counters["refused_identity"] += 1
            self._send(peer.rid, "refuse", reason=reason[: m.MAX_TEXT])
            raise BadMessage("identity", reason)
        self._last_seen[peer.rid] = time.monotonic()
        getattr(self, f"_on_{kind}")(peer.rid, actor_id, message)

    def _identity_problem(self, peer: Peer, actor_id: str, claimed: str, kind: str) -> str | None:
        """Why this connection (said hello as `actor_id`) may not send a `kind` for `claimed`."""
        if self.bound_keys:  # the key of whoever uses this routing id now, for both ids
            reason = identity_refusal(peer.key_name, claimed) or identity_refusal(peer.key_name,
                                                                                  actor_id)
            if reason is not None:
                return reason
        if claimed != actor_id:
            return f"a {kind} for actor {claimed!r} on actor {actor_id!r}'s connection refused"
        return None

    def _on_hello(self, peer: Peer, message: dict) -> None:
        rid, actor_id = peer.rid, message["actor_id"]
        reason = identity_refusal(peer.key_name, actor_id) if self.bound_keys else None
        if reason is not None:  # nothing changes: not the real actor's connection, nor its ledger
            self._counters["refused"] += 1
            self._counters["refused_identity"] += 1
            self.log.log(logging.ERROR, ("identity", peer.key_name, actor_id), "%s (from %s)",
                         reason, peer.address)
            return self._send(rid, "refuse", reason=reason[: m.MAX_TEXT])
        ours = {"protocol": m.PROTOCOL_VERSION, **self.info}
        theirs = {"protocol": message["protocol"], **message["info"]}
        diffs = m.differences(ours, theirs, "learner", "actor")
        if diffs:
            reason = f"actor {actor_id!r} refused, handshake differs: " + "; ".join(diffs)
            self._counters["refused"] += 1
            self._forget(rid)
            self.log.log(logging.ERROR, ("handshake", self._who(peer)), reason)
            return self._send(rid, "refuse", reason=reason[: m.MAX_TEXT])
        taken = [r for r, a in self._peers.items() if a == actor_id and r != rid]
        for old in taken:
            self._forget(old)  # the actor reconnected: its newest connection wins
        self._peers[rid], self._last_seen[rid] = actor_id, time.monotonic()
        acked = self._ledger.hello(actor_id, message["resume_from"])
        # After any hello a reference goes through the storage's check of the stored sequence:
        # never paired with frames decoded from another connection under the same id.
        self._pairs.forget(actor_id)
        self._counters["hellos"] += 1
        note, level = "", logging.INFO
        if taken:
            self._counters["replaced_connections"] += 1
            note = "; its previous connection is dropped"
            if not self.bound_keys:
                note, level = note + " (without CURVE any peer can do this)", logging.WARNING
        self.log.log(level, ("hello", actor_id), "actor %r connected from %s (resumes at %d)%s",
                     actor_id, peer.address, message["resume_from"], note)
        self._send(rid, "welcome", protocol=m.PROTOCOL_VERSION, acked=acked, info=self.info,
                   max_bytes=self.max_message_bytes)

    def _on_batch(self, rid: bytes, actor_id: str, message: dict) -> None:
        transitions, errors = [], []
        first = message["first_sequence"]
        for k, data in enumerate(message["transitions"]):
            try:
                transitions.append(self._pairs.decode(actor_id, first + k, data))
            except BadMessage as e:
                # Kept as an invalid placeholder: the storage drops and counts it, and the watermark
                # moves on, so one bad record cannot stall the actor forever.
                errors.append(str(e))
                transitions.append({INVALID: str(e)})
        if errors:
            self._counters["bad_transitions"] += len(errors)
            detail = f"{len(errors)} of {len(transitions)}: {errors[0]}"
            self.bad(BadMessage("transition", detail), Peer(rid))
        outcome = self._ledger.offer(actor_id, first, transitions)
        self._counters[f"batches_{outcome.value}"] += 1
        if outcome is Offer.QUEUED:
            self._counters["transitions"] += len(transitions)
        elif outcome is Offer.DUPLICATE:
            self._send(rid, "ack", last_sequence=self._ledger.acked(actor_id))
        elif outcome in (Offer.GAP, Offer.FULL):
            reason = f"batch not accepted ({outcome.value}): resend from your watermark"
            self._send(rid, "reset", reason=reason)

    def _on_weights_request(self, rid: bytes, actor_id: str, message: dict) -> None:
        self._counters["weights_requests"] += 1
        _, weights_message = self._published()
        if weights_message is not None:
            self._send_raw(rid, weights_message)

    def _on_stats(self, rid: bytes, actor_id: str, message: dict) -> None:
        self._stats.append({**message["stats"], "actor_id": actor_id})

    def _on_heartbeat(self, rid: bytes, actor_id: str, message: dict) -> None:
        latest, _ = self._published()
        version = None if latest is None else [latest[0].incarnation, latest[0].step]
        self._send(rid, "heartbeat", latest=version)
        if (status := self._status()) is not None:
            self._send_raw(rid, status)

    def _send(self, rid: bytes, kind: str, **fields: Any) -> None:
        self._send_raw(rid, m.pack(kind, **fields))

    def _who(self, peer: Peer) -> str:
        actor_id = self._peers.get(peer.rid)
        if actor_id is not None:
            return f"actor {actor_id!r}"
        if peer.key_name is not None:
            return f"key {peer.key_name!r}"
        return f"an unknown peer at {peer.address or '?'}"

    def bad(self, error: BadMessage, peer: Peer) -> None:
        """Count a bad message from `peer` (and log it, at most once per peer every interval)."""
        self._counters["bad_messages"] += 1
        self._counters[f"bad_{error.category}"] += 1
        who = self._who(peer)
        self.log.log(logging.WARNING, ("bad", who), "dropped a bad message from %s (%s); %d bad so "
                     "far", who, error, self._counters["bad_messages"])
