"""The learner's end of the ZeroMQ transport: `TransitionSource`, `WeightsPublisher`,
`VariableSource` and `StatusPublisher`.

Sockets: a ROUTER on the data port (actors' DEALERs connect: hello, batches, stats, heartbeats,
weights requests) and a PUB on the weights port. One I/O thread owns both (ZeroMQ sockets are not
thread-safe); the learner loop talks to it through the `Ledger` (batches in, acknowledgements out)
and a command queue. A bad message is dropped and counted (`counters()`), and the thread keeps
serving; nothing an actor sends can stop it.

Security (`serl.transport.security`): a non-loopback `bind_host` without CURVE raises
`InsecureBindError` before anything is bound, unless `allow_unauthenticated_network`; with CURVE
each message carries the name of its connection's key (ZAP User-Id, see `keys`), and a connection
acts only as the actor id its key is named after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from typing import Any

import zmq

from serl.data.schema import TransitionSpec
from serl.transport import messages as m
from serl.transport.codec import TransitionCodec
from serl.transport.interfaces import IncomingBatch, LearnerStatus, Params, WeightsVersion, snapshot
from serl.transport.keys import LearnerCurve, make_server, start_authenticator
from serl.transport.learner_ledger import Ledger
from serl.transport.learner_peers import LearnerPeers, Peer
from serl.transport.params_codec import encode_params
from serl.transport.security import UNAUTHENTICATED_WARNING, check_bind
from serl.transport.wake import WakePipe
from serl.transport.wire import BadMessage

log = logging.getLogger("serl.transport.learner")


class ZmqLearnerTransport:
    """Serves any number of actors. `data_port`/`weights_port` 0 pick free ports (read them back
    from the attributes). `handshake_info` must equal each actor's, key by key (see
    `messages.spec_info`). `InsecureBindError` (a ValueError) for a non-loopback `bind_host`
    without `curve`, unless `allow_unauthenticated_network` (then a warning); `OSError` if a port
    is taken."""

    def __init__(self, spec: TransitionSpec, handshake_info: dict[str, Any],
                 bind_host: str = "127.0.0.1", data_port: int = 0, weights_port: int = 0,
                 curve: LearnerCurve | None = None, *, max_message_bytes: int = 64 << 20,
                 actor_timeout: float = 6.0, max_queued_batches: int = 256,
                 allow_unauthenticated_network: bool = False):
        # before any socket exists: a refused bind must not have listened even for a moment
        unauthenticated = check_bind(bind_host, curve is not None, allow_unauthenticated_network)
        self.info = dict(handshake_info)
        self.max_message_bytes, self.actor_timeout = int(max_message_bytes), actor_timeout
        self._codec = TransitionCodec(spec, max_bytes=max_message_bytes)
        self._ledger = Ledger(max_queued_batches)
        self._counters: Counter[str] = Counter()
        self._stats: deque[dict] = deque(maxlen=10_000)
        self._commands: deque[tuple] = deque()
        self._latest: tuple[WeightsVersion, Params] | None = None
        self._weights_message: bytes | None = None
        self._publish_lock = threading.Lock()
        self._status_message: bytes | None = None
        self._peers = LearnerPeers(self.info, self._codec, self._ledger, self._counters,
                                   self._stats, self._send_raw,
                                   lambda: (self._latest, self._weights_message),
                                   self.max_message_bytes, actor_timeout,
                                   bound_keys=curve is not None,
                                   status=lambda: self._status_message)
        self._stop = False
        self._ctx = zmq.Context()
        self._auth = start_authenticator(self._ctx, curve) if curve is not None else None
        try:
            self._router = self._socket(zmq.ROUTER, curve)
            # beyond: disconnect, not buffer
            self._router.setsockopt(zmq.MAXMSGSIZE, 2 * self.max_message_bytes)
            self._pub = self._socket(zmq.PUB, curve)
            # a stalled actor holds at most two versions in memory
            self._pub.setsockopt(zmq.SNDHWM, 2)
            self.data_port = _bind(self._router, bind_host, data_port)
            self.weights_port = _bind(self._pub, bind_host, weights_port)
        except BaseException:
            self._close_context()
            raise
        if unauthenticated:
            log.warning(UNAUTHENTICATED_WARNING, bind_host)
        self._wake = WakePipe()
        self._thread = threading.Thread(target=self._run, name="serl-learner-io", daemon=True)
        self._thread.start()  # sockets migrate to it here (thread start is a full memory barrier)

    def _socket(self, kind: int, curve: LearnerCurve | None) -> zmq.Socket:
        socket = self._ctx.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            make_server(socket, curve)
        return socket

    # ---------- TransitionSource ----------
    def receive(self, max_items: int, timeout: float) -> list[IncomingBatch]:
        return self._ledger.take(max_items, timeout)

    def acknowledge(self, actor_id: str, last_sequence: int) -> None:
        if self._ledger.acknowledge(actor_id, last_sequence):
            self._command("ack", actor_id, last_sequence)

    def stats(self) -> list[dict]:
        drained = []
        while self._stats:
            drained.append(self._stats.popleft())
        return drained

    # ---------- WeightsPublisher / VariableSource ----------
    def publish(self, version: WeightsVersion, params: Params) -> None:
        if not isinstance(version, WeightsVersion):
            raise TypeError(f"version must be a WeightsVersion, got {type(version).__name__}")
        with self._publish_lock:
            if self._latest is not None and version <= self._latest[0]:
                raise ValueError(f"publish {version} is not newer than {self._latest[0]}")
            message = m.pack("weights", version=[version.incarnation, version.step],
                             params=encode_params(params))
            self._latest, self._weights_message = (version, snapshot(params)), message
        self._command("publish", message)

    def latest(self) -> tuple[WeightsVersion, Params] | None:
        return self._latest

    # ---------- StatusPublisher ----------
    def publish_status(self, status: LearnerStatus) -> None:
        # one reference assignment: the I/O thread sends old or new, never a mix
        self._status_message = m.status_message(status)

    # ---------- state ----------
    def counters(self) -> dict[str, int]:
        """Message counts: bad_messages (and bad_<category>, e.g. bad_identity), bad_transitions,
        batches, transitions, refused (hellos), refused_identity (messages for an actor id the
        connection may not act as), replaced_connections, unknown_peers, released, gaps,
        weights_sent, weights_requests, ..."""
        return dict(self._counters)

    def connected_actors(self) -> list[str]:
        """Actor ids with a live connection (said hello, heartbeating)."""
        return self._peers.actor_ids()

    def close(self) -> None:
        """Stop serving and release the ports. Unacknowledged transitions stay in the actors'
        spools."""
        if self._stop:
            return
        self._stop = True
        self._wake.wake()
        self._thread.join()
        self._wake.close()
        self._close_context()

    def _close_context(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        self._ctx.destroy(linger=0)

    def __enter__(self) -> ZmqLearnerTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------- the I/O thread ----------
    def _command(self, *command: Any) -> None:
        self._commands.append(command)
        self._wake.wake()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake.fd, zmq.POLLIN)
        next_sweep = 0.0
        try:
            while not self._stop:
                events = dict(poller.poll(100))
                if self._wake.fd in events:
                    self._wake.drain()
                if self._router in events:
                    self._drain_router()
                self._run_commands()
                if time.monotonic() >= next_sweep:
                    self._peers.release_silent()
                    next_sweep = time.monotonic() + 0.25
        finally:
            self._router.close(linger=0)
            self._pub.close(linger=0)

    def _drain_router(self) -> None:
        for _ in range(256):  # then let commands (acks, publishes) through
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            peer = _peer(frames)
            try:
                self._peers.handle(peer, [frame.buffer for frame in frames[1:]])
            except BadMessage as e:
                self._peers.bad(e, peer)
            except Exception:  # noqa: BLE001 -- a bug handling one message must not stop the server
                self._counters["internal_errors"] += 1
                log.exception("error handling a message; dropped")

    def _run_commands(self) -> None:
        while self._commands:
            command = self._commands.popleft()
            if command[0] == "ack":
                _, actor_id, sequence = command
                for rid in self._peers.routes(actor_id):
                    self._send_raw(rid, m.pack("ack", last_sequence=sequence))
            elif command[0] == "publish":
                self._pub.send(command[1], copy=False)
                self._counters["weights_sent"] += 1

    def _send_raw(self, rid: bytes, data: bytes) -> None:
        try:
            self._router.send_multipart([rid, data], zmq.NOBLOCK, copy=len(data) < 65536)
        except zmq.Again:
            # the actor is not reading; it resends what is unacknowledged
            self._counters["send_dropped"] += 1


def _peer(frames: list[zmq.Frame]) -> Peer:
    """Who sent `frames` (routing id, then the message): ZeroMQ's per-connection metadata, on every
    message frame. User-Id is the ZAP authenticator's name for the key (absent without CURVE)."""
    return Peer(frames[0].bytes, _property(frames[-1], "User-Id"),
                _property(frames[-1], "Peer-Address"))


def _property(frame: zmq.Frame, name: str) -> str | None:
    try:
        return frame.get(name) or None
    except zmq.ZMQError:  # not set for this connection (no ZAP handler: no CURVE)
        return None


def _bind(socket: zmq.Socket, host: str, port: int) -> int:
    try:
        socket.bind(f"tcp://{host}:{port or '*'}")
    except zmq.ZMQError as err:
        raise OSError(f"cannot listen on {host}:{port} ({err}): is another learner running there? "
                      "Choose other ports with --transport.data-port / --transport.weights-port"
                      ) from err
    return int(socket.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
