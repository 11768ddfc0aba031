"""The actor's I/O thread: the only user of its DEALER (data) and SUB (weights) sockets.

It connects, says hello, and once welcomed sends the spool's unacknowledged records from the
watermark on, in batches, at most `window` batches unacknowledged (a partial batch only when none
is). Acknowledgements trim the spool. Heartbeats go out every `heartbeat_interval`; a learner silent
for `dead_after` seconds (or one that does not welcome us in that time, or sends `reset`) is lost:
both sockets are dropped (with whatever they had queued) and made again after a back-off, and
everything unacknowledged is sent again. Weights arrive on the SUB (only the newest is kept) or,
when asked, on the data socket; they are checked before the `on_weights` callback sees them.
Bad messages and lost connections are logged at a bounded rate (`RateLimitedLog`); a refusal once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from serl.transport import messages as m
from serl.transport.interfaces import WeightsVersion
from serl.transport.keys import ActorCurve, client_keys, make_client
from serl.transport.params_codec import ParamsDecoder
from serl.transport.rate_log import RateLimitedLog
from serl.transport.spool import Spool
from serl.transport.wake import WakePipe
from serl.transport.wire import BadMessage

log = logging.getLogger("serl.transport.actor")


@dataclass(frozen=True)
class LinkSettings:
    """Timing and sizes of the actor's link to the learner."""

    heartbeat_interval: float = 0.5  # seconds between heartbeats
    # seconds of silence (or without a welcome) before the learner counts as lost
    dead_after: float = 2.0
    backoff_initial: float = 0.1  # first wait before reconnecting; doubles up to backoff_max
    backoff_max: float = 2.0
    max_batch: int = 64  # transitions per batch message
    # bytes per batch message (also kept under half the learner's limit)
    max_batch_bytes: int = 8 << 20
    window: int = 4  # batches sent and not yet acknowledged
    max_weights_bytes: int = 1 << 30  # largest weights message accepted


class ActorLink(threading.Thread):
    """Runs until `stop()`. Reads the spool and stats queue; calls `on_weights(version, params)`
    with checked, strictly newer weights."""

    def __init__(self, endpoints: tuple[str, str], actor_id: str, info: dict[str, Any],
                 spool: Spool, decoder: ParamsDecoder,
                 on_weights: Callable[[WeightsVersion, Any], None], stats: deque,
                 settings: LinkSettings, curve: ActorCurve | None):
        super().__init__(name=f"serl-actor-io-{actor_id}", daemon=True)
        self.endpoints, self.actor_id = endpoints, actor_id
        self.info, self.spool = dict(info), spool
        self.decoder, self.on_weights, self.stats = decoder, on_weights, stats
        self.settings = settings
        # read now: a missing key file fails here
        self._keys = None if curve is None else client_keys(curve)
        self.counters: Counter[str] = Counter()
        self.connected = False  # welcomed by the learner
        self.refused: str | None = None  # why the learner refused us (then we stop trying)
        # (monotonic time received, the learner's newest LearnerStatus), None before the first
        self.status = None
        self._ctx = zmq.Context()
        self._dealer = self._sub = None
        self._poller: zmq.Poller | None = None
        self._backoff, self._reconnect_at = settings.backoff_initial, 0.0
        self._last_heard = self._last_beat = self._last_request = self._last_sync = 0.0
        self._cursor = 0  # next sequence to send
        self._in_flight: deque[int] = deque()  # last sequence of each unacknowledged batch
        self._batch_bytes = settings.max_batch_bytes
        self._have: WeightsVersion | None = None
        self._stopping = False
        self._pipe = WakePipe()
        self._log = RateLimitedLog(log)

    def wake(self) -> None:
        """Tell the thread there is something new to send (never blocks)."""
        self._pipe.wake()

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        self.join()
        self._pipe.close()
        self._ctx.destroy(linger=0)

    # ---------- the loop ----------
    def run(self) -> None:
        try:
            while not self._stopping:
                try:
                    due = time.monotonic() >= self._reconnect_at
                    if self._dealer is None and self.refused is None and due:
                        self._connect()
                    self._wait(0.05)
                    self._tick(time.monotonic())
                # A bug must not silently end the link; it is logged and counted.
                except Exception:  # noqa: BLE001
                    self.counters["internal_errors"] += 1
                    log.exception("actor %r: error in the I/O thread", self.actor_id)
                    time.sleep(0.05)
        finally:
            self._disconnect(None, backoff=False)

    def _wait(self, timeout: float) -> None:
        poller = self._poller or _pipe_poller(self._pipe.fd)
        events = dict(poller.poll(int(timeout * 1000)))
        if self._pipe.fd in events:
            self._pipe.drain()
        for socket in (self._dealer, self._sub):
            if socket is not None and socket in events:
                self._receive(socket)

    def _tick(self, now: float) -> None:
        if now - self._last_sync >= self.spool.fsync_interval:
            self.spool.sync()
            self._last_sync = now
        if self._dealer is None:
            return
        if now - self._last_heard > self.settings.dead_after:
            return self._disconnect("the learner is silent" if self.connected
                                    else "no welcome from the learner")
        if not self.connected:
            return
        if now - self._last_beat >= self.settings.heartbeat_interval:
            self._send("heartbeat")
            self._last_beat = now
        self._pump()
        while self.stats and self._dealer is not None:
            self._send("stats", stats=self.stats.popleft())

    # ---------- connection ----------
    def _connect(self) -> None:
        self._dealer, self._sub = self._socket(zmq.DEALER), self._socket(zmq.SUB)
        self._dealer.setsockopt(zmq.MAXMSGSIZE, self.settings.max_weights_bytes + 4096)
        self._sub.setsockopt(zmq.MAXMSGSIZE, self.settings.max_weights_bytes + 4096)
        self._sub.setsockopt(zmq.CONFLATE, 1)  # keep only the newest weights
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._dealer.connect(self.endpoints[0])
        self._sub.connect(self.endpoints[1])
        self._poller = _pipe_poller(self._pipe.fd)
        self._poller.register(self._dealer, zmq.POLLIN)
        self._poller.register(self._sub, zmq.POLLIN)
        self._last_heard = time.monotonic()
        self._send("hello", protocol=m.PROTOCOL_VERSION, actor_id=self.actor_id,
                   resume_from=self.spool.acked + 1, info=self.info)
        self.counters["connects"] += 1

    def _socket(self, kind: int) -> zmq.Socket:
        socket = self._ctx.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        if self._keys is not None:
            make_client(socket, self._keys)
        return socket

    def _disconnect(self, reason: str | None, backoff: bool = True) -> None:
        if self._dealer is None:
            return
        if reason is not None:
            # keyed by the reason without its details: one line per kind of loss per interval
            self._log.log(logging.WARNING, reason.split(" (")[0],
                          "actor %r: %s; reconnecting in %.1f s", self.actor_id, reason,
                          self._backoff if backoff else 0.0)
            self.counters["disconnects"] += 1
        for socket in (self._dealer, self._sub):
            # drops what it had queued: after a reconnect we resend from the watermark
            socket.close(linger=0)
        self._dealer = self._sub = self._poller = None
        self.connected = False
        self._reconnect_at = time.monotonic() + (self._backoff if backoff else 0.0)
        if backoff:
            self._backoff = min(2 * self._backoff, self.settings.backoff_max)

    # ---------- receiving ----------
    def _receive(self, socket: zmq.Socket) -> None:
        for _ in range(64):
            if socket is not self._dealer and socket is not self._sub:
                return  # replaced while handling the previous message
            try:
                data = socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                kind, message = m.parse(data, m.LEARNER_MESSAGES,
                                        self.settings.max_weights_bytes + 4096)
                if socket is self._sub and kind != "weights":
                    raise BadMessage("protocol", f"{kind} on the weights socket")
                if socket is self._dealer:
                    self._last_heard = time.monotonic()
                getattr(self, f"_on_{kind}")(message)
            except BadMessage as e:
                self.counters["bad_messages"] += 1
                self._log.log(logging.WARNING, "bad", "actor %r: dropped a bad message from the "
                              "learner (%s)", self.actor_id, e)

    def _on_welcome(self, message: dict) -> None:
        self.connected, self._backoff = True, self.settings.backoff_initial
        self._batch_bytes = min(self.settings.max_batch_bytes, message["max_bytes"] // 2)
        if self.spool.acked < message["acked"] < self.spool.next_sequence:
            self.spool.acknowledge(message["acked"])
        # resend everything unacknowledged
        self._cursor, self._in_flight = self.spool.acked + 1, deque()
        self._send("weights_request")
        self._last_request = time.monotonic()
        log.info("actor %r: connected to the learner; resending from %d", self.actor_id,
                 self._cursor)

    def _on_refuse(self, message: dict) -> None:
        self.refused = message["reason"]
        log.error("actor %r: the learner refused the connection: %s", self.actor_id, self.refused)
        self._disconnect(None, backoff=False)

    def _on_reset(self, message: dict) -> None:
        self._disconnect(f"the learner asked for a new hello ({message['reason']})", backoff=False)

    def _on_ack(self, message: dict) -> None:
        sequence = message["last_sequence"]
        if sequence >= self.spool.next_sequence:
            raise BadMessage("protocol",
                             f"ack of {sequence}, only {self.spool.next_sequence} produced")
        self.spool.acknowledge(sequence)
        while self._in_flight and self._in_flight[0] <= sequence:
            self._in_flight.popleft()
        self._cursor = max(self._cursor, sequence + 1)
        self.counters["acks"] += 1

    def _on_heartbeat(self, message: dict) -> None:
        latest, now = m.version_of(message["latest"]), time.monotonic()
        if latest is not None and (self._have is None
                                   or latest > self._have) and now - self._last_request > 1.0:
            # a publication we missed (e.g. dropped while we were slow)
            self._send("weights_request")
            self._last_request = now

    def _on_status(self, message: dict) -> None:
        # one reference assignment, read by the actor's dashboard
        self.status = (time.monotonic(), m.status_of(message))

    def _on_weights(self, message: dict) -> None:
        version = m.version_of(message["version"])
        if self._have is not None and version <= self._have:
            return
        params = self.decoder.decode(message["params"])
        self._have = version
        self.counters["weights"] += 1
        self.on_weights(version, params)

    # ---------- sending ----------
    def _pump(self) -> None:
        while len(self._in_flight) < self.settings.window and self._dealer is not None:
            available = self.spool.next_sequence - self._cursor
            if available <= 0 or (available < self.settings.max_batch and self._in_flight):
                # a partial batch waits while others are in flight: batches grow when the learner is
                # slow
                return
            records = self.spool.read(self._cursor, self.settings.max_batch, self._batch_bytes)
            if not records:
                return
            message = m.pack("batch", actor_id=self.actor_id, first_sequence=records[0][0],
                             transitions=[r for _, r in records])
            if not self._send_raw(message):
                return
            self._cursor = records[-1][0] + 1
            self._in_flight.append(records[-1][0])
            self.counters["batches_sent"] += 1

    def _send(self, kind: str, **fields: Any) -> bool:
        return self._send_raw(m.pack(kind, **fields))

    def _send_raw(self, data: bytes) -> bool:
        try:
            self._dealer.send(data, zmq.NOBLOCK, copy=len(data) < 65536)
            return True
        except zmq.Again:
            return False  # queue full (the learner is unreachable): try again later


def _pipe_poller(fd: int) -> zmq.Poller:
    poller = zmq.Poller()
    poller.register(fd, zmq.POLLIN)
    return poller
