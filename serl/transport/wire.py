"""The wire's lowest layer, shared by the transport and the robot protocol: size-checked msgpack
decoding, `BadMessage`, and numpy arrays as an ext type.

Never pickle: a decoded message is dicts, ints, strings and byte strings, turned into numpy arrays
only through the ext types, and only where the receiver expects an array of exactly that dtype and
shape. Anything else raises `BadMessage` with a short reason; decoding never raises anything else.

Extension types (msgpack ext codes):
    1 ARRAY  u8 header length, ascii header "<dtype.str>:<d0>,<d1>,..." (nothing after ":"
             when 0-d), then the raw C-order bytes
    2 JPEG   a baseline JPEG of an H x W x 3 (RGB) or H x W x 1 frame (see `frames`)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import msgpack
import numpy as np

ARRAY_EXT = 1
JPEG_EXT = 2
# Plain numeric dtypes in this machine's byte order; nothing with objects, fields or sub-arrays.
ALLOWED_DTYPES = {np.dtype(t).str: np.dtype(t) for t in (
    np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64,
    np.float16, np.float32, np.float64)}


class BadMessage(ValueError):
    """A received message that is not valid. `category` is a short counter name ("size", "msgpack",
    "envelope", "transition", "jpeg", "weights", "protocol"); str(e) is "category: detail"."""

    def __init__(self, category: str, detail: str):
        super().__init__(f"{category}: {detail}")
        self.category, self.detail = category, detail


def unpack(data: Any, max_bytes: int) -> Any:
    """msgpack-decode `data` (bytes) after checking its size; ext types stay `msgpack.ExtType`
    (decoded by caller)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BadMessage("envelope", f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise BadMessage("size", f"{len(data)} bytes, limit {max_bytes}")
    # msgpack bounds every string, list and map by the buffer's length, so a small message cannot
    # allocate much
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True,
                               ext_hook=_ext)
    except Exception as e:  # noqa: BLE001 -- anything msgpack raises is a malformed message
        raise BadMessage("msgpack", f"{type(e).__name__}: {str(e)[:80]}") from None


def _ext(code: int, data: bytes) -> msgpack.ExtType:
    # msgpack's unpacker always passes an int code in 0..127 and bytes: skip ExtType's own checks
    return tuple.__new__(msgpack.ExtType, (code, data))


def encode_array(array: np.ndarray) -> msgpack.ExtType:
    """A numpy array (or scalar) as an ARRAY ext value."""
    if not isinstance(array, np.ndarray | np.generic):
        array = np.asarray(array)
    dtype = array.dtype.str
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"cannot send dtype {array.dtype}")
    return _ext(ARRAY_EXT, _array_header(dtype, array.shape) + array.tobytes())


@functools.lru_cache(maxsize=4096)
def _array_header(dtype_str: str, shape: tuple[int, ...]) -> bytes:
    header = f"{dtype_str}:{','.join(map(str, shape))}".encode()
    return bytes([len(header)]) + header


def decode_array(value: Any, shape: tuple[int, ...], dtype: np.dtype, path: str) -> np.ndarray:
    """The read-only array in an ARRAY ext value, which must have exactly `shape` and `dtype`."""
    if not isinstance(value, msgpack.ExtType) or value.code != ARRAY_EXT:
        raise BadMessage("transition", f"{path}: expected an array, got {describe(value)}")
    data = value.data
    n = data[0] if data else 0
    got = _parse_header(data[1:1 + n])
    if got is None:
        raise BadMessage("transition", f"{path}: malformed array header")
    dtype_str, got_shape = got
    if ALLOWED_DTYPES.get(dtype_str) != dtype or got_shape != shape:
        raise BadMessage("transition",
                         f"{path}: {dtype_str}{list(got_shape)}, expected {dtype.str}{list(shape)}")
    raw = memoryview(data)[1 + n:]
    if len(raw) != dtype.itemsize * math.prod(shape):
        raise BadMessage("transition",
                         f"{path}: {len(raw)} data bytes for {dtype.str}{list(shape)}")
    return np.frombuffer(raw, dtype).reshape(shape)  # a view of the message: no copy, read-only


@functools.lru_cache(maxsize=4096)
def _parse_header(header: bytes) -> tuple[str, tuple[int, ...]] | None:
    """(dtype string, shape) of an ARRAY header, None if malformed (cached: headers repeat)."""
    try:
        dtype_str, dims = header.decode("ascii").split(":")
        return dtype_str, tuple(int(d) for d in dims.split(",")) if dims else ()
    except (UnicodeDecodeError, ValueError):
        return None


def describe(value: Any) -> str:
    if isinstance(value, msgpack.ExtType):
        return f"ext type {value.code}"
    return type(value).__name__
