"""The actor's end of the ZeroMQ transport: `Adder`, `VariableClient` and `StatsSink` over a spool
and a link.

    transport = ZmqActorTransport("learner-host", 5555, 5556, "robot-1", spec, info,
                                  run_dir / "spool", template_params=policy_params)
    adder, weights, stats = transport.adder(), transport.variable_client(), transport.stats_sink()
    ... adder.add(transition) every step; weights.poll() between steps;
    ... stats.episode({...}) per episode ...
    transport.close()   # or flush first: adder.flush(timeout)

The constructor opens the spool (resuming its sequences) and starts the I/O thread, which connects
on its own and keeps reconnecting; nothing here ever waits on the network except `flush` and `wait`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from serl.data.schema import TransitionSpec
from serl.faults import fault_point
from serl.transport.actor_link import ActorLink, LinkSettings
from serl.transport.codec import FrameCodec, TransitionCodec
from serl.transport.continuity import Continuity
from serl.transport.frames import FrameCache
from serl.transport.interfaces import LearnerStatus, Params, Transition, WeightsVersion
from serl.transport.keys import ActorCurve
from serl.transport.params_codec import ParamsDecoder
from serl.transport.spool import Spool

log = logging.getLogger("serl.transport.actor")


class ZmqActorTransport:
    """One actor's connection to the learner, with its spool in `spool_dir` (kept across restarts:
    the same folder and `actor_id` continue the sequence and resend what the learner never
    acknowledged).

    `template_params` (the actor's own policy params) is what received weights are checked against:
    structure, shapes and dtypes; without it any tree of numeric arrays is accepted. `frames` picks
    JPEG (and its quality) or lossless camera frames; give the policy view's `frame_cache` (the
    same codec): then each frame is JPEG-encoded once, for the policy and the wire.
    """

    def __init__(self, learner_host: str, data_port: int, weights_port: int, actor_id: str,
                 spec: TransitionSpec, handshake_info: dict[str, Any], spool_dir: str | Path,
                 template_params: Params | None = None, curve: ActorCurve | None = None, *,
                 frames: FrameCodec = FrameCodec(), frame_cache: FrameCache | None = None,
                 spool_capacity_bytes: int = 8 << 30, fsync_interval: float = 1.0,
                 settings: LinkSettings = LinkSettings()):
        self.actor_id, self.spec, self.frames = actor_id, spec, frames
        self.codec = TransitionCodec(spec, frames, settings.max_batch_bytes, frame_cache)
        self.spool = Spool(spool_dir, spool_capacity_bytes, fsync_interval=fsync_interval)
        # the first version of each learner incarnation received
        self._weights_log = Path(spool_dir) / "weights.log"
        self._weights: tuple[WeightsVersion, Params] | None = None
        self._weights_changed = threading.Condition()
        self._stats: deque[dict] = deque(maxlen=1000)
        endpoints = (f"tcp://{learner_host}:{data_port}", f"tcp://{learner_host}:{weights_port}")
        try:
            self._link = ActorLink(endpoints, actor_id, handshake_info, self.spool,
                                   ParamsDecoder(template_params, settings.max_weights_bytes),
                                   self._set_weights, self._stats, settings, curve)
        except BaseException:
            self.spool.close()  # e.g. an unreadable key file: leave the spool free for the next try
            raise
        self._link.start()
        self._closed = False

    def adder(self) -> ZmqAdder:
        return ZmqAdder(self)

    def variable_client(self) -> ZmqVariableClient:
        """A new client: its first `poll` returns the newest weights received so far, if any."""
        return ZmqVariableClient(self)

    def stats_sink(self) -> ZmqStatsSink:
        return ZmqStatsSink(self)

    @property
    def connected(self) -> bool:
        """Welcomed by the learner and not lost since."""
        return self._link.connected

    @property
    def refused(self) -> str | None:
        """Why the learner refused this actor (spec or config mismatch): stop acting and show it.
        None if not."""
        return self._link.refused

    def learner_status(self) -> tuple[float, LearnerStatus] | None:
        """`StatusSource.learner_status`: the learner's newest status and when it arrived."""
        return self._link.status

    def spool_fill(self) -> float:
        """The spool's bytes as a fraction of its capacity (1: full, no new episode starts)."""
        return self.spool.nbytes / max(1, self.spool.capacity_bytes)

    def counters(self) -> dict[str, int]:
        """connects, disconnects, batches_sent, acks, weights, bad_messages."""
        return dict(self._link.counters)

    def _set_weights(self, version: WeightsVersion, params: Params) -> None:
        if self._weights is None or version.incarnation != self._weights[0].incarnation:
            try:  # what `serl.audit` checks: every learner incarnation's weights reached this actor
                with open(self._weights_log, "a") as f:
                    f.write(f"{version.incarnation} {version.step} {time.time():.3f}\n")
            except OSError as err:
                log.warning("could not record received weights in %s: %s", self._weights_log, err)
        with self._weights_changed:
            # one reference assignment: readers see old or new, never a mix
            self._weights = (version, params)
            self._weights_changed.notify_all()

    def close(self) -> None:
        """Stop the I/O thread and close the spool (synced). Unacknowledged transitions stay spooled
        and are sent by the next transport opened on the same folder; `adder().flush(timeout)` first
        to wait for them."""
        if self._closed:
            return
        self._closed = True
        self._link.stop()
        self.spool.close()

    def __enter__(self) -> ZmqActorTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ZmqAdder:
    """`Adder`: `add` encodes (JPEG frames; observations that are the previous transition's next
    observations as a reference to them, see `pairs`), appends to the spool and returns; the I/O
    thread does the rest. One adder per actor thread."""

    def __init__(self, transport: ZmqActorTransport):
        self._t = transport
        self._continuity = Continuity()

    def add(self, transition: Transition) -> None:
        """Spool `transition` (ValueError if it does not match the spec, naming the fields; nothing
        is spooled)."""
        spool, codec = self._t.spool, self._t.codec
        expected = spool.next_sequence
        previous = self._continuity.follows(transition, expected)
        record = codec.encode(transition, previous)
        if len(record) > codec.max_bytes:
            raise ValueError(f"a transition of {len(record)} bytes cannot be sent (limit "
                             f"{codec.max_bytes})")
        intervened = bool(np.asarray(transition["intervened"]))
        try:  # a reference is spooled only right after its predecessor
            sequence = spool.add(record, intervened, expected if previous else None)
        except ValueError:  # another adder got in between: send the observations in full
            sequence = spool.add(codec.encode(transition), intervened)
        self._continuity.remember(transition, sequence)
        self._t._link.wake()
        if not bool(np.asarray(transition["dones"])):
            fault_point("mid_episode")  # chaos tests: SIGKILL with an episode half spooled

    def flush(self, timeout: float | None = None) -> bool:
        """Sync the spool to disk, then wait until the learner acknowledged everything added so far.
        False on timeout, or at once if the learner refused this actor."""
        target = self._t.spool.next_sequence - 1
        self._t.spool.sync(break_line=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._t.spool.wait_acked(target,
                                           0.1 if deadline is None
                                           else min(0.1, deadline - time.monotonic())):
            if self._t.refused is not None or (deadline is not None
                                               and time.monotonic() >= deadline):
                return False
        return True

    @property
    def full(self) -> bool:
        """The spool reached its capacity: finish the episode, start no new one, tell
        the operator."""
        return self._t.spool.full

    def pending(self) -> int:
        """Transitions added and not yet acknowledged."""
        return self._t.spool.next_sequence - 1 - self._t.spool.acked


class ZmqVariableClient:
    """`VariableClient` over the newest checked weights the I/O thread received."""

    def __init__(self, transport: ZmqActorTransport):
        self._t = transport
        self._last: WeightsVersion | None = None

    def _take_newer(self) -> tuple[WeightsVersion, Params] | None:
        current = self._t._weights
        if current is None or (self._last is not None and current[0] <= self._last):
            return None
        self._last = current[0]
        return current

    def poll(self) -> tuple[WeightsVersion, Params] | None:
        return self._take_newer()

    def wait(self, timeout: float) -> tuple[WeightsVersion, Params] | None:
        with self._t._weights_changed:
            self._t._weights_changed.wait_for(lambda: self._t._weights is not None
                                              and (self._last is None
                                                   or self._t._weights[0] > self._last), timeout)
        return self._take_newer()


class ZmqStatsSink:
    """`StatsSink`: queued (newest 1,000 kept while disconnected) and sent by the I/O thread, best
    effort."""

    def __init__(self, transport: ZmqActorTransport):
        self._t = transport

    def episode(self, stats: Mapping[str, Any]) -> None:
        """Queue one episode's flat stats; numpy scalars become numbers. TypeError for other value
        types."""
        self._t._stats.append({str(k): _plain(k, v) for k, v in stats.items()})
        self._t._link.wake()


def _plain(key: str, value: Any) -> bool | int | float | str:
    if isinstance(value, np.generic | np.ndarray) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"episode stat {key!r}: expected a number, bool or string, got "
                    f"{type(value).__name__}")
