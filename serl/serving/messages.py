"""The served base policy's messages: one msgpack map per ZeroMQ message, `{"kind": KIND, ...}`.

Client -> server (DEALER -> ROUTER):
    hello   spec: {"observations": {key: [shape, dtype]}, "action_dim": int} (what it will send)
    act     id: int (grows per request), n: int (0: one observation, else a batch of n),
            deadline_ms: int (the client waits this long; a later reply is dropped),
            obs: {key: array} (each the spec's shape, with a leading n when n > 0)
Server -> client:
    welcome identity: str (the policy's), action_dim: int
    refuse  reason: str (the spec differs, naming what)
    action  id: int, action: array (float32 (action_dim,) or (n, action_dim))
    error   id: int, reason: str (this request failed; the server goes on)
Every field is checked; anything else is a `BadMessage`, dropped and counted. Arrays are the wire's
ARRAY ext values (dtype, shape, raw bytes): never pickle."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from serl.data.schema import TransitionSpec
from serl.transport.wire import BadMessage, decode_array, encode_array, unpack

MAX_BYTES = 64 << 20
MAX_BATCH = 4096


def pack(kind: str, **fields: Any) -> bytes:
    return msgpack.packb({"kind": kind, **fields}, use_bin_type=True)


def parse(data: bytes, kinds: dict[str, tuple[str, ...]]) -> tuple[str, dict]:
    """(kind, fields) of a message of one of `kinds` (kind -> its fields), or BadMessage."""
    message = unpack(data, MAX_BYTES)
    if not isinstance(message, dict):
        raise BadMessage("envelope", "expected a map")
    kind = message.pop("kind", None)
    if kind not in kinds:
        raise BadMessage("envelope", f"unexpected kind {str(kind)[:40]!r}")
    if set(message) != set(kinds[kind]):
        raise BadMessage("envelope", f"{kind}: fields {sorted(map(str, message))}, expected "
                         f"{sorted(kinds[kind])}")
    return kind, message


def request_id(value) -> int:
    if type(value) is not int or not 0 <= value < 2**62:
        raise BadMessage("envelope", f"id: expected a non-negative int, got {value!r:.40}")
    return value


CLIENT_KINDS = {"hello": ("spec",), "act": ("id", "n", "deadline_ms", "obs")}
SERVER_KINDS = {"welcome": ("identity", "action_dim"), "refuse": ("reason",),
                "action": ("id", "action"), "error": ("id", "reason")}


def encode_obs(obs: dict) -> dict:
    return {k: encode_array(np.ascontiguousarray(v)) for k, v in obs.items()}


def decode_obs(value, n, spec: TransitionSpec) -> dict:
    """The observations of an `act` message, each checked against `spec` (leading n if n > 0)."""
    if type(n) is not int or not 0 <= n <= MAX_BATCH:
        raise BadMessage("envelope", f"n: expected an int in [0, {MAX_BATCH}], got {n!r:.40}")
    if not isinstance(value, dict) or set(value) != set(spec.observation_spec):
        keys = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        raise BadMessage("envelope", f"obs: {keys}, expected the keys "
                         f"{sorted(spec.observation_spec)}")
    lead = (n,) if n else ()
    return {k: decode_array(value[k], lead + tuple(shape), dtype, f"obs.{k}")
            for k, (shape, dtype) in spec.observation_spec.items()}


def decode_action(value, n: int, action_dim: int) -> np.ndarray:
    shape = (n, action_dim) if n else (action_dim,)
    return decode_array(value, shape, np.dtype(np.float32), "action")
