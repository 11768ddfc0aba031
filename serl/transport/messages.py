"""The transport's messages: one msgpack map per ZeroMQ message, `{"kind": KIND, field: value}`.

Actor -> learner (data socket, DEALER -> ROUTER):
    hello            protocol: int, actor_id: str, resume_from: int (first sequence it will send),
                     info: {str: scalar}
    batch            actor_id: str, first_sequence: int, transitions: [bin, ...] (each a
                     `TransitionCodec` record; its `observations` nil when they are exactly the
                     `next_observations` of the actor's previous sequence, so a camera frame
                     travels once: protocol 2)
    weights_request  (nothing): answered at once with `weights` if the learner has published any
    stats            stats: {str: int | float | bool | str} (one finished episode)
    heartbeat        (nothing): answered with a heartbeat
Learner -> actor (data socket):
    welcome          protocol: int, acked: int (highest sequence of this actor acknowledged, -1 if
                     none), info, max_bytes: int (the learner's message size limit: the actor
                     keeps its batches under half)
    refuse           reason: str (the handshake differs, naming what; or, with CURVE, the
                     message is for an actor id that is not its connection's key's name): the
                     actor stops trying and shows the reason
    ack              last_sequence: int (cumulative: everything <= it is durable on the learner)
    heartbeat        latest: [incarnation, step] | None (newest weights, so an actor that missed
                     them asks again)
    reset            reason: str (the learner does not know this peer or lost its place: say
                     hello again)
    weights          version: [incarnation, step], params: bin (see `params_codec`); also the only
                     PUB message
    status           status: {str: scalar}, evals: [[env_steps, success], ...] (<= 64),
                     train: [[env_steps, success, intervention_rate], ...] (<= 256): the
                     learner's `LearnerStatus`, sent after each heartbeat reply (protocol 3)
Every field is checked (type, range, length); extra or missing fields are a `BadMessage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from serl.data.schema import TransitionSpec
from serl.transport.interfaces import LearnerStatus, WeightsVersion
from serl.transport.wire import BadMessage, unpack

# 2: a transition's observations may refer to its predecessor's next observations
# 3: the learner's `status` message
PROTOCOL_VERSION = 3
MAX_SEQUENCE = 2**62
MAX_BATCH_ITEMS = 4096
MAX_TEXT = 4096  # handshake values and refusal reasons
MAX_ENTRIES = 256  # keys in a handshake info or stats map

Checker = Callable[[Any, str], None]


def _fail(path: str, what: str) -> None:
    raise BadMessage("envelope", f"{path}: {what}")


def _int(low: int, high: int = MAX_SEQUENCE) -> Checker:
    def check(value, path):
        if type(value) is not int or not low <= value <= high:
            _fail(path, f"expected an int in [{low}, {high}], got {_short(value)}")
    return check


def _text(max_len: int) -> Checker:
    def check(value, path):
        if not isinstance(value, str) or not 0 < len(value) <= max_len:
            _fail(path, f"expected a string of 1..{max_len} characters, got {_short(value)}")
    return check


def _scalar_map(value, path) -> None:
    if not isinstance(value, dict) or len(value) > MAX_ENTRIES:
        _fail(path, f"expected a map of at most {MAX_ENTRIES} entries, got {_short(value)}")
    for key, item in value.items():
        _text(200)(key, path)
        text = isinstance(item, str) and len(item) <= MAX_TEXT
        if not (isinstance(item, bool | int | float) or text):
            _fail(f"{path}/{key}", f"expected a number, bool or short string, got {_short(item)}")


def _version_or_none(value, path) -> None:
    if value is not None:
        _version(value, path)


def _version(value, path) -> None:
    if not (isinstance(value,
                       list) and len(value) == 2 and all(type(v) is int and 0 <= v < 2**63
                                                         for v in value)):
        _fail(path, f"expected [incarnation, step], got {_short(value)}")


def _bins(value, path) -> None:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_BATCH_ITEMS:
        _fail(path, f"expected a list of 1..{MAX_BATCH_ITEMS} transitions, got {_short(value)}")
    if not all(isinstance(item, bytes) for item in value):
        _fail(path, "every transition must be a byte string")


def _points(width: int, max_len: int) -> Checker:
    def check(value, path):
        if not isinstance(value, list) or len(value) > max_len:
            _fail(path, f"expected a list of at most {max_len} points, got {_short(value)}")
        for k, point in enumerate(value):
            if not (isinstance(point, list) and len(point) == width and all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in point)):
                _fail(f"{path}[{k}]", f"expected {width} numbers, got {_short(point)}")
    return check


def _bin(value, path) -> None:
    if not isinstance(value, bytes):
        _fail(path, f"expected bytes, got {_short(value)}")


ACTOR_MESSAGES: dict[str, dict[str, Checker]] = {
    "hello": {"protocol": _int(0, 2**31), "actor_id": _text(200), "resume_from": _int(0),
              "info": _scalar_map},
    "batch": {"actor_id": _text(200), "first_sequence": _int(0), "transitions": _bins},
    "weights_request": {},
    "stats": {"stats": _scalar_map},
    "heartbeat": {},
}
LEARNER_MESSAGES: dict[str, dict[str, Checker]] = {
    "welcome": {"protocol": _int(0, 2**31), "acked": _int(-1), "info": _scalar_map,
                "max_bytes": _int(1, 2**40)},
    "refuse": {"reason": _text(MAX_TEXT)},
    "ack": {"last_sequence": _int(0)},
    "heartbeat": {"latest": _version_or_none},
    "reset": {"reason": _text(MAX_TEXT)},
    "weights": {"version": _version, "params": _bin},
    "status": {"status": _scalar_map, "evals": _points(2, 64), "train": _points(3, 256)},
}


def pack(kind: str, **fields: Any) -> bytes:
    """One message as bytes."""
    return msgpack.packb({"kind": kind, **fields}, use_bin_type=True)


def parse(data: Any, accepted: Mapping[str, Mapping[str, Checker]],
          max_bytes: int) -> tuple[str, dict[str, Any]]:
    """(kind, fields) of a message whose kind is in `accepted` and whose fields all check;
    BadMessage otherwise."""
    message = unpack(data, max_bytes)
    if not isinstance(message, dict):
        raise BadMessage("envelope", f"expected a map, got {type(message).__name__}")
    kind = message.pop("kind", None)
    if not isinstance(kind, str) or kind not in accepted:
        raise BadMessage("envelope", f"unexpected kind {_short(kind)}")
    schema = accepted[kind]
    if message.keys() != schema.keys():
        raise BadMessage("envelope",
                         f"{kind}: fields {sorted(map(_short, message))}, expected "
                         f"{sorted(schema)}")
    for name, check in schema.items():
        check(message[name], f"{kind}.{name}")
    return kind, message


def status_message(status: LearnerStatus) -> bytes:
    """`status` as a `status` message (its lists cut to the newest the schema allows)."""
    return pack("status", status=dict(status.status),
                evals=[[float(v) for v in p] for p in status.evals[-64:]],
                train=[[float(v) for v in p] for p in status.train[-256:]])


def status_of(message: dict) -> LearnerStatus:
    """A checked `status` message's fields as a LearnerStatus."""
    return LearnerStatus(dict(message["status"]), tuple(map(tuple, message["evals"])),
                         tuple(map(tuple, message["train"])))


def version_of(value: list[int] | None) -> WeightsVersion | None:
    """A checked `[incarnation, step]` as a WeightsVersion."""
    return None if value is None else WeightsVersion(*value)


def spec_info(spec: TransitionSpec, **extra: Any) -> dict[str, Any]:
    """A handshake info map describing `spec` field by field (so a refusal names the field that
    differs), plus `extra` entries (e.g. `agent_config=<hash>`)."""
    info: dict[str, Any] = {"spec.fingerprint": spec.fingerprint(),
                            "spec.action_dim": spec.action_dim}
    info.update({f"spec.observations.{k}": f"{d}{list(s)}" for k, s, d in spec.observations})
    info.update(extra)
    return info


def differences(ours: Mapping[str, Any], theirs: Mapping[str, Any], us: str,
                them: str) -> list[str]:
    """"key: <them> X, <us> Y" for every key whose values differ (a missing key reads
    as "missing")."""
    out = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = theirs.get(key, "missing"), ours.get(key, "missing")
        if a != b or type(a) is not type(b):
            out.append(f"{key}: {them} {_short(a)}, {us} {_short(b)}")
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
