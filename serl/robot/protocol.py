"""The robot server's wire protocol: msgpack maps, numpy arrays as the transport codec's ARRAY ext
values.

Request: {"id": int, "op": str, "args": map}. Reply: {"id": int, "ok": bool, "result": map} or
{"id": int, "ok": false, "error": str, "fault": bool} (`fault`: refused because the robot is in
fault). A client sends one frame over DEALER; the server's ROUTER sees (identity, frame), so it
knows who owns the arm.

Ops and their args:
    get_state {}                          -> state (see STATE_ARRAYS and `decode_state`)
    set_pose {"pose": 7 floats}           -> {"target": 7, "clipped": bool, "hold": str | None}
    gripper {"command": "open"|"close"}   -> {} (asynchronous; state reports gripper_moving)
    reset {"joint_reset": bool, "pose": 7 floats | None, "task": bool}
                                          -> {"error_m": float, "task": map | None}
    recover {}                            -> {"mode": str}
    set_impedance {"params": map}         -> {"params": map}
    health {} (anyone, owner or not)      -> {"mode", "owner", "state_age_s", ...}
    release {}                            -> {} (the caller gives up ownership)

Time stamps (`stamp` in the state, camera header stamps) are the ROS clock of the driver: wall-clock
seconds (time.time()) on the robot PC, so an age is `time.time() - stamp` on that PC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from serl.transport.codec import BadMessage, decode_array, encode_array, unpack

OPS = ("get_state", "set_pose", "gripper", "reset", "recover", "set_impedance", "health", "release")
PROTOCOL_VERSION = 2  # 2: health reports the arm adapter's state ("arm"); state has "object_pose"
MAX_REPLY_BYTES = 1 << 20
# Array fields of a state reply: shape, always float64.
STATE_ARRAYS = {
    "tcp_pose": (7,),
    "tcp_vel": (6,),
    "tcp_force": (3,),
    "tcp_torque": (3,),
    "q": (7,),
    "dq": (7,),
}


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict[str, Any]


def encode_request(req_id: int, op: str, args: Mapping[str, Any] | None = None) -> bytes:
    return msgpack.packb(
        {"id": req_id, "op": op, "args": to_wire(dict(args or {}))}, use_bin_type=True
    )


def decode_request(data: bytes, max_bytes: int) -> Request:
    """The request in `data`; BadMessage (with the request id when one could be read) if it is not
    one."""
    tree = unpack(data, max_bytes)
    if not isinstance(tree, dict):
        raise BadMessage("envelope", f"request must be a map, got {type(tree).__name__}")
    req_id = tree.get("id")
    if not isinstance(req_id, int) or isinstance(req_id, bool):
        raise BadMessage("envelope", "request needs an integer 'id'")
    op, args = tree.get("op"), tree.get("args", {})
    if op not in OPS:
        raise RequestError(req_id, f"unknown op {str(op)[:40]!r}; valid ops: {', '.join(OPS)}")
    if not isinstance(args, dict):
        raise RequestError(req_id, f"'args' must be a map, got {type(args).__name__}")
    unknown = set(args) - set(ALLOWED_ARGS[op])
    if unknown:
        raise RequestError(
            req_id,
            f"{op}: unknown argument(s) {sorted(str(k)[:40] for k in unknown)}; "
            f"valid: {list(ALLOWED_ARGS[op])}",
        )
    return Request(req_id, op, args)


ALLOWED_ARGS = {
    "get_state": (),
    "set_pose": ("pose",),
    "gripper": ("command",),
    "reset": ("joint_reset", "pose", "task"),
    "recover": (),
    "set_impedance": ("params",),
    "health": (),
    "release": (),
}


class RequestError(BadMessage):
    """A request whose envelope was read (so it has an id) but whose op or arguments are wrong."""

    def __init__(self, req_id: int, detail: str):
        super().__init__("request", detail)
        self.req_id = req_id


def encode_reply(
    req_id: int | None,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
    fault: bool = False,
) -> bytes:
    if error is None:
        body = {"id": req_id, "ok": True, "result": to_wire(dict(result or {}))}
    else:
        body = {"id": req_id, "ok": False, "error": error, "fault": fault}
    return msgpack.packb(body, use_bin_type=True)


def decode_reply(data: bytes) -> dict[str, Any]:
    tree = unpack(data, MAX_REPLY_BYTES)
    if not isinstance(tree, dict) or "ok" not in tree or "id" not in tree:
        raise BadMessage("envelope", "reply must be a map with 'id' and 'ok'")
    return tree


def to_wire(value: Any) -> Any:
    """numpy arrays and scalars inside maps and lists, turned into things msgpack packs."""
    if isinstance(value, np.ndarray):
        return encode_array(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value


def as_vector(value: Any, n: int, name: str) -> np.ndarray:
    """A float64 (n,) array from a list of numbers, a float64/float32 ARRAY ext value or a float
    array; ValueError names the problem."""
    if isinstance(value, msgpack.ExtType):
        for dtype in (np.float64, np.float32):
            try:
                array = decode_array(value, (n,), np.dtype(dtype), name)
                break
            except BadMessage as err:
                problem = str(err)
        else:
            raise ValueError(problem)
    # already decoded (in-process callers)
    elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
        if value.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {value.shape}")
        array = value
    elif isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        if len(value) != n:
            raise ValueError(f"{name} must have {n} numbers, got {len(value)}")
        array = np.array(value, dtype=np.float64)
    else:
        raise ValueError(
            f"{name} must be a list of {n} numbers or a float array, got {type(value).__name__}"
        )
    array = np.asarray(array, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} contains NaN or infinity at index {np.flatnonzero(bad).tolist()}")
    return array


def decode_state(result: Mapping[str, Any]) -> dict[str, Any]:
    """A state reply with its arrays as read-only float64 numpy arrays (BadMessage if one is
    malformed)."""
    state = dict(result)
    for key, shape in STATE_ARRAYS.items():
        state[key] = decode_array(state.get(key), shape, np.dtype(np.float64), key)
    # what the server holds or tracks (None before the first target), and the task object's
    # measured pose (None where the rig does not measure it)
    for key in ("target", "object_pose"):
        if state.get(key) is not None:
            state[key] = decode_array(state[key], (7,), np.dtype(np.float64), key)
    return state
