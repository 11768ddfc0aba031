"""The learner's end of the ZeroMQ transport: `TransitionSource`, `WeightsPublisher` and `VariableSource`.

Sockets: a ROUTER on the data port (actors' DEALERs connect: hello, batches, stats, heartbeats, weights requests)
and a PUB on the weights port. One I/O thread owns both (ZeroMQ sockets are not thread-safe); the learner loop
talks to it through the `Ledger` (batches in, acknowledgements out) and a command queue. A bad message is dropped
and counted (`counters()`), and the thread keeps serving; nothing an actor sends can stop it.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import Counter, deque
from typing import Any

import zmq

from serl.data.schema import TransitionSpec
from serl.transport import messages as m
from serl.transport.codec import BadMessage, TransitionCodec
from serl.transport.inprocess import snapshot
from serl.transport.interfaces import IncomingBatch, Params, WeightsVersion
from serl.transport.keys import LearnerCurve, make_server, start_authenticator
from serl.transport.learner_ledger import Ledger, Offer
from serl.transport.params_codec import encode_params
from serl.transport.wake import WakePipe

log = logging.getLogger("serl.transport.learner")


class ZmqLearnerTransport:
    """Serves any number of actors. `data_port`/`weights_port` 0 pick free ports (read them back from the
    attributes). `handshake_info` must equal each actor's, key by key (see `messages.spec_info`)."""

    def __init__(self, spec: TransitionSpec, handshake_info: dict[str, Any], bind_host: str = "127.0.0.1",
                 data_port: int = 0, weights_port: int = 0, curve: LearnerCurve | None = None, *,
                 max_message_bytes: int = 64 << 20, actor_timeout: float = 6.0, max_queued_batches: int = 256):
        self.info = dict(handshake_info)
        self.max_message_bytes, self.actor_timeout = int(max_message_bytes), actor_timeout
        self._codec = TransitionCodec(spec, max_bytes=max_message_bytes)
        self._ledger = Ledger(max_queued_batches)
        self._counters: Counter[str] = Counter()
        self._stats: deque[dict] = deque(maxlen=10_000)
        self._commands: deque[tuple] = deque()
        self._peers: dict[bytes, str] = {}  # routing id -> actor id, for actors that said hello
        self._last_seen: dict[bytes, float] = {}
        self._latest: tuple[WeightsVersion, Params] | None = None
        self._weights_message: bytes | None = None
        self._publish_lock = threading.Lock()
        self._last_bad_log = 0.0
        self._stop = False
        self._ctx = zmq.Context()
        self._auth = start_authenticator(self._ctx, curve) if curve is not None else None
        try:
            self._router = self._socket(zmq.ROUTER, curve)
            self._router.setsockopt(zmq.MAXMSGSIZE, 2 * self.max_message_bytes)  # beyond: disconnect, not buffer
            self._pub = self._socket(zmq.PUB, curve)
            self._pub.setsockopt(zmq.SNDHWM, 2)  # a stalled actor holds at most two versions in memory
            self.data_port = _bind(self._router, bind_host, data_port)
            self.weights_port = _bind(self._pub, bind_host, weights_port)
        except BaseException:
            self._close_context()
            raise
        if curve is None and not _is_loopback(bind_host):
            log.warning("binding %s without CURVE: anyone who can reach this machine can send transitions and "
                        "read the policy weights (see `serl keys generate`)", bind_host)
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
            message = m.pack("weights", version=[version.incarnation, version.step], params=encode_params(params))
            self._latest, self._weights_message = (version, snapshot(params)), message
        self._command("publish", message)

    def latest(self) -> tuple[WeightsVersion, Params] | None:
        return self._latest

    # ---------- state ----------
    def counters(self) -> dict[str, int]:
        """Message counts: bad_messages (and bad_<category>), bad_transitions, batches, transitions, refused,
        unknown_peers, released, gaps, weights_sent, weights_requests, ..."""
        return dict(self._counters)

    def connected_actors(self) -> list[str]:
        """Actor ids with a live connection (said hello, heartbeating)."""
        return sorted(set(self._peers.copy().values()))  # copy: atomic, while the I/O thread may be changing it

    def close(self) -> None:
        """Stop serving and release the ports. Unacknowledged transitions stay in the actors' spools."""
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
                    self._release_silent()
                    next_sweep = time.monotonic() + 0.25
        finally:
            self._router.close(linger=0)
            self._pub.close(linger=0)

    def _drain_router(self) -> None:
        for _ in range(256):  # then let commands (acks, publishes) through
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._handle(frames)
            except BadMessage as e:
                self._bad(e, frames[0])
            except Exception:  # noqa: BLE001 -- a bug handling one message must not stop the server
                self._counters["internal_errors"] += 1
                log.exception("error handling a message; dropped")

    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            raise BadMessage("envelope", f"{len(frames) - 1} frames, expected 1")
        rid, data = frames
        kind, message = m.parse(data, m.ACTOR_MESSAGES, self.max_message_bytes)
        if kind == "hello":
            return self._on_hello(rid, message)
        actor_id = self._peers.get(rid)
        if actor_id is None:  # e.g. an actor that has not noticed this learner restarted
            self._counters["unknown_peers"] += 1
            return self._send(rid, "reset", reason="unknown peer: say hello first")
        self._last_seen[rid] = time.monotonic()
        getattr(self, f"_on_{kind}")(rid, actor_id, message)

    def _on_hello(self, rid: bytes, message: dict) -> None:
        actor_id = message["actor_id"]
        ours = {"protocol": m.PROTOCOL_VERSION, **self.info}
        diffs = m.differences(ours, {"protocol": message["protocol"], **message["info"]}, "learner", "actor")
        if diffs:
            reason = f"actor {actor_id!r} refused, handshake differs: " + "; ".join(diffs)
            self._counters["refused"] += 1
            self._forget(rid)
            log.error(reason)
            return self._send(rid, "refuse", reason=reason[:m.MAX_TEXT])
        for old in [r for r, a in self._peers.items() if a == actor_id and r != rid]:
            self._forget(old)  # the actor reconnected: its newest connection wins
        self._peers[rid], self._last_seen[rid] = actor_id, time.monotonic()
        acked = self._ledger.hello(actor_id, message["resume_from"])
        self._counters["hellos"] += 1
        log.info("actor %r connected (resumes at %d)", actor_id, message["resume_from"])
        self._send(rid, "welcome", protocol=m.PROTOCOL_VERSION, acked=acked, info=self.info,
                   max_bytes=self.max_message_bytes)

    def _on_batch(self, rid: bytes, actor_id: str, message: dict) -> None:
        if message["actor_id"] != actor_id:
            raise BadMessage("protocol", f"batch for {message['actor_id']!r} on {actor_id!r}'s connection")
        transitions, errors = [], []
        for data in message["transitions"]:
            try:
                transitions.append(self._codec.decode(data))
            except BadMessage as e:  # kept as an invalid placeholder: the storage drops and counts it, and the
                errors.append(str(e))  # watermark moves on, so one bad record cannot stall the actor forever
                transitions.append({"invalid": str(e)})
        if errors:
            self._counters["bad_transitions"] += len(errors)
            self._bad(BadMessage("transition", f"{len(errors)} of {len(transitions)}: {errors[0]}"), rid)
        outcome = self._ledger.offer(actor_id, message["first_sequence"], transitions)
        self._counters[f"batches_{outcome.value}"] += 1
        if outcome is Offer.QUEUED:
            self._counters["transitions"] += len(transitions)
        elif outcome is Offer.DUPLICATE:
            self._send(rid, "ack", last_sequence=self._ledger.acked(actor_id))
        elif outcome in (Offer.GAP, Offer.FULL):
            self._send(rid, "reset", reason=f"batch not accepted ({outcome.value}): resend from your watermark")

    def _on_weights_request(self, rid: bytes, actor_id: str, message: dict) -> None:
        self._counters["weights_requests"] += 1
        if self._weights_message is not None:
            self._send_raw(rid, self._weights_message)

    def _on_stats(self, rid: bytes, actor_id: str, message: dict) -> None:
        self._stats.append({**message["stats"], "actor_id": actor_id})

    def _on_heartbeat(self, rid: bytes, actor_id: str, message: dict) -> None:
        latest = self._latest
        self._send(rid, "heartbeat", latest=None if latest is None else [latest[0].incarnation, latest[0].step])

    def _run_commands(self) -> None:
        while self._commands:
            command = self._commands.popleft()
            if command[0] == "ack":
                _, actor_id, sequence = command
                for rid in [r for r, a in self._peers.items() if a == actor_id]:
                    self._send(rid, "ack", last_sequence=sequence)
            elif command[0] == "publish":
                self._pub.send(command[1], copy=False)
                self._counters["weights_sent"] += 1

    def _release_silent(self) -> None:
        deadline = time.monotonic() - self.actor_timeout
        for rid in [r for r, t in self._last_seen.items() if t < deadline]:
            log.warning("actor %r stopped heartbeating; released its connection", self._peers.get(rid))
            self._counters["released"] += 1
            self._forget(rid)

    def _forget(self, rid: bytes) -> None:
        self._peers.pop(rid, None)
        self._last_seen.pop(rid, None)

    def _send(self, rid: bytes, kind: str, **fields: Any) -> None:
        self._send_raw(rid, m.pack(kind, **fields))

    def _send_raw(self, rid: bytes, data: bytes) -> None:
        try:
            self._router.send_multipart([rid, data], zmq.NOBLOCK, copy=len(data) < 65536)
        except zmq.Again:
            self._counters["send_dropped"] += 1  # the actor is not reading; it resends what is unacknowledged

    def _bad(self, error: BadMessage, rid: bytes) -> None:
        self._counters["bad_messages"] += 1
        self._counters[f"bad_{error.category}"] += 1
        now = time.monotonic()
        if now - self._last_bad_log > 5.0:  # rate-limited: a flood of bad messages must not flood the log
            self._last_bad_log = now
            log.warning("dropped a bad message from %s (%s); %d bad so far", self._peers.get(rid, "an unknown peer"),
                        error, self._counters["bad_messages"])


def _bind(socket: zmq.Socket, host: str, port: int) -> int:
    try:
        socket.bind(f"tcp://{host}:{port or '*'}")
    except zmq.ZMQError as err:
        raise OSError(f"cannot listen on {host}:{port} ({err}): is another learner running there? Choose other "
                      "ports with --transport.data-port / --transport.weights-port") from err
    return int(socket.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", "0.0.0.0" is not parsed as loopback either, and an interface name may be public
