"""Wire codec for transitions: msgpack, numpy arrays as (dtype, shape, raw bytes), camera frames as JPEG or raw.

Never pickle: a decoded message is dicts, ints, strings and byte strings, turned into numpy arrays only through the
two extension types below, and only where the `TransitionSpec` expects an array of exactly that dtype and shape.
Anything else raises `BadMessage` with a short reason; decoding never raises anything else.

Extension types (msgpack ext codes):
    1 ARRAY  u8 header length, ascii header "<dtype.str>:<d0>,<d1>,..." (nothing after ":" when 0-d), then the raw
             C-order bytes
    2 JPEG   a baseline JPEG of an H x W x 3 (RGB) or H x W x 1 frame
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import msgpack
import numpy as np

from serl.data.schema import OBSERVATION_FIELDS, TransitionSpec, fixed_fields

ARRAY_EXT = 1
JPEG_EXT = 2
# Plain numeric dtypes in this machine's byte order; nothing with objects, fields or sub-arrays.
ALLOWED_DTYPES = {np.dtype(t).str: np.dtype(t) for t in (
    np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64,
    np.float16, np.float32, np.float64)}
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)


class BadMessage(ValueError):
    """A received message that is not valid. `category` is a short counter name ("size", "msgpack", "envelope",
    "transition", "jpeg", "weights", "protocol"); str(e) is "category: detail"."""

    def __init__(self, category: str, detail: str):
        super().__init__(f"{category}: {detail}")
        self.category = category


def unpack(data: Any, max_bytes: int) -> Any:
    """msgpack-decode `data` (bytes) after checking its size; ext types stay `msgpack.ExtType` (decoded by caller)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BadMessage("envelope", f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise BadMessage("size", f"{len(data)} bytes, limit {max_bytes}")
    try:  # msgpack bounds every string, list and map by the buffer's length, so a small message cannot allocate much
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as e:  # noqa: BLE001 -- anything msgpack raises is a malformed message
        raise BadMessage("msgpack", f"{type(e).__name__}: {str(e)[:80]}") from None


# ---------- arrays ----------

def encode_array(array: np.ndarray) -> msgpack.ExtType:
    """A numpy array (or scalar) as an ARRAY ext value."""
    array = np.asarray(array)
    if array.dtype.str not in ALLOWED_DTYPES:
        raise ValueError(f"cannot send dtype {array.dtype}")
    return msgpack.ExtType(ARRAY_EXT, _array_header(array.dtype.str, array.shape) + array.tobytes())


@functools.lru_cache(maxsize=4096)
def _array_header(dtype_str: str, shape: tuple[int, ...]) -> bytes:
    header = f"{dtype_str}:{','.join(map(str, shape))}".encode()
    return bytes([len(header)]) + header


def decode_array(value: Any, shape: tuple[int, ...], dtype: np.dtype, path: str) -> np.ndarray:
    """The read-only array in an ARRAY ext value, which must have exactly `shape` and `dtype`."""
    if not isinstance(value, msgpack.ExtType) or value.code != ARRAY_EXT:
        raise BadMessage("transition", f"{path}: expected an array, got {_describe(value)}")
    data = value.data
    n = data[0] if data else 0
    try:
        dtype_str, dims = data[1:1 + n].decode("ascii").split(":")
        got_shape = tuple(int(d) for d in dims.split(",")) if dims else ()
    except (UnicodeDecodeError, ValueError):
        raise BadMessage("transition", f"{path}: malformed array header") from None
    if ALLOWED_DTYPES.get(dtype_str) != dtype or got_shape != shape:
        raise BadMessage("transition", f"{path}: {dtype_str}{list(got_shape)}, expected {dtype.str}{list(shape)}")
    raw = memoryview(data)[1 + n:]
    if len(raw) != dtype.itemsize * math.prod(shape):
        raise BadMessage("transition", f"{path}: {len(raw)} data bytes for {dtype.str}{list(shape)}")
    return np.frombuffer(raw, dtype).reshape(shape)  # a view of the message: no copy, read-only


# ---------- camera frames ----------

def _jpeg_encode(frame: np.ndarray, quality: int) -> bytes:
    image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.shape[2] == 3 else frame[:, :, 0]
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def _jpeg_dims(data: bytes) -> tuple[int, int, int]:
    """(height, width, components) from a JPEG's frame header, read before decoding so a forged size cannot make
    the decoder allocate a huge image."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        raise BadMessage("jpeg", "not a complete JPEG")
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in _SOF_MARKERS and i + 10 <= len(data):
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big"), data[i + 9]
        if marker == 0xDA:  # start of scan: no frame header came first
            break
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    raise BadMessage("jpeg", "no frame header")


def _jpeg_decode(data: bytes, shape: tuple[int, ...], path: str) -> np.ndarray:
    h, w, c = _jpeg_dims(data)
    if (h, w, c) != shape:
        raise BadMessage("jpeg", f"{path}: JPEG of {h}x{w}x{c}, expected {'x'.join(map(str, shape))}")
    flags = cv2.IMREAD_COLOR if c == 3 else cv2.IMREAD_GRAYSCALE
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise BadMessage("jpeg", f"{path}: undecodable JPEG")
    frame = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if c == 3 else image[:, :, None]
    if frame.shape != shape:
        raise BadMessage("jpeg", f"{path}: decoded to {frame.shape}, expected {shape}")
    frame.flags.writeable = False  # like every other decoded array
    return frame


@dataclass(frozen=True)
class FrameCodec:
    """How camera frames travel: JPEG at `jpeg_quality` (1..100), or lossless raw arrays when it is None.

    Encoding is deterministic (the same frame always gives the same bytes), so the learner decodes exactly what
    `roundtrip` gave the policy, and a frame that is both `next_observations` of step t and `observations` of
    step t+1 decodes to identical arrays (the replay storage keeps such a frame once).
    """

    jpeg_quality: int | None = 90

    def __post_init__(self):
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100 or None, got {self.jpeg_quality}")

    def _jpeg_ok(self, frame: np.ndarray) -> bool:
        jpeg_shaped = frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] in (1, 3)
        return self.jpeg_quality is not None and jpeg_shaped

    def encode(self, frame: np.ndarray) -> msgpack.ExtType:
        """A frame as a JPEG ext value (frames JPEG cannot hold, e.g. 4 channels, travel raw)."""
        if not self._jpeg_ok(frame):
            return encode_array(frame)
        return msgpack.ExtType(JPEG_EXT, _jpeg_encode(np.ascontiguousarray(frame), self.jpeg_quality))

    def roundtrip(self, frame: np.ndarray) -> np.ndarray:
        """What the learner will decode from `frame`: run it on frames before inference."""
        return jpeg_roundtrip(frame, self.jpeg_quality) if self._jpeg_ok(frame) else frame

    def roundtrip_observation(self, observation: Mapping[str, Any], camera_keys: tuple[str, ...]) -> dict[str, Any]:
        """`observation` with every camera frame replaced by its `roundtrip` (other keys as they are)."""
        return {k: self.roundtrip(v) if k in camera_keys else v for k, v in observation.items()}


def jpeg_roundtrip(frame: np.ndarray, quality: int) -> np.ndarray:
    """`frame` (uint8 H x W x 3 RGB, or x 1) JPEG-encoded at `quality` and decoded again (read-only)."""
    frame = np.ascontiguousarray(frame)
    return _jpeg_decode(_jpeg_encode(frame, quality), frame.shape, "frame")


# A frame travels twice (next_observations of step t, observations of t+1): the second encode and decode are
# lookups in these small caches, which halves the codec's CPU time.

class _EncodeCache:
    """Recent encodings by frame object, each checked against a copy of the frame's content at encoding time, so
    a camera that refills one buffer in place never gets a stale encoding (and nothing is hashed)."""

    def __init__(self, size: int):
        self._entries: deque[tuple[np.ndarray, bytes, msgpack.ExtType]] = deque(maxlen=size)

    def encode(self, frames: FrameCodec, frame: np.ndarray) -> msgpack.ExtType:
        if not frames._jpeg_ok(frame):
            return encode_array(frame)
        content = None
        for cached, snapshot, ext in self._entries:
            if cached is frame:
                content = frame.tobytes() if content is None else content
                if content == snapshot:
                    return ext
        ext = frames.encode(frame)
        self._entries.append((frame, frame.tobytes() if content is None else content, ext))
        return ext


class _DecodeCache:
    """Recent decodings by JPEG bytes (deterministic decoding: same bytes, same frame). Decoded frames are
    read-only, so sharing one between transitions is safe."""

    def __init__(self, size: int):
        self.size, self._frames = size, OrderedDict()

    def decode(self, value: Any, shape: tuple[int, ...], path: str) -> np.ndarray:
        if not (isinstance(value, msgpack.ExtType) and value.code == JPEG_EXT):
            return decode_array(value, shape, np.dtype(np.uint8), path)  # a lossless frame
        key = (value.data, shape)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = _jpeg_decode(value.data, shape, path)
            if len(self._frames) > self.size:
                self._frames.popitem(last=False)
        return frame


# ---------- transitions ----------

class TransitionCodec:
    """Encodes transitions of `spec` for the wire and decodes them back, validated against the spec. One thread
    per codec (decoding keeps a small cache)."""

    def __init__(self, spec: TransitionSpec, frames: FrameCodec = FrameCodec(), max_bytes: int = 16 << 20):
        self.spec, self.frames, self.max_bytes = spec, frames, int(max_bytes)
        self._cameras = frozenset(spec.camera_keys)
        self._fixed = fixed_fields(spec.action_dim)
        self._obs = spec.observation_spec
        self._encoded = _EncodeCache(4 * max(1, len(self._cameras)))
        self._decoded = _DecodeCache(16 * max(1, len(self._cameras)))

    def encode(self, transition: Mapping[str, Any]) -> bytes:
        """msgpack bytes of one transition. ValueError (naming the fields) if it does not match the spec exactly:
        the actor finds its own bugs instead of the learner dropping its data."""
        try:
            tree = self._encode_tree(transition)
        except (KeyError, TypeError, AttributeError, ValueError):
            tree = None
        if tree is None:  # the fast path only says "no": the spec names what is wrong
            problems = self.spec.structure_problems(transition) or ["not encodable"]
            raise ValueError("cannot send transition: " + "; ".join(problems))
        return msgpack.packb(tree, use_bin_type=True)

    def _encode_tree(self, transition: Mapping[str, Any]) -> dict[str, Any] | None:
        """The msgpack tree, or None if any key, type, dtype or shape differs from the spec."""
        if len(transition) != len(self._fixed) + 2:
            return None
        tree: dict[str, Any] = {}
        for top in OBSERVATION_FIELDS:
            obs = transition[top]
            if len(obs) != len(self._obs):
                return None
            tree[top] = out = {}
            for key, (shape, dtype) in self._obs.items():
                value = obs[key]
                if not _exactly(value, shape, dtype):
                    return None
                out[key] = self._encoded.encode(self.frames, value) if key in self._cameras else encode_array(value)
        for name, (shape, dtype) in self._fixed.items():
            value = transition[name]
            if not _exactly(value, shape, dtype):
                return None
            tree[name] = encode_array(value)
        return tree

    def decode(self, data: Any) -> dict[str, Any]:
        """The transition in `data`: read-only arrays, numpy scalars for 0-d fields. BadMessage if anything is off."""
        tree = unpack(data, self.max_bytes)
        _check_keys(tree, ("observations", "next_observations", *self._fixed), "transition")
        out: dict[str, Any] = {}
        for top in OBSERVATION_FIELDS:
            obs = tree[top]
            _check_keys(obs, tuple(self._obs), top)
            out[top] = {k: self._decode_obs(obs[k], shape, dtype, f"{top}/{k}", k)
                        for k, (shape, dtype) in self._obs.items()}
        for name, (shape, dtype) in self._fixed.items():
            array = decode_array(tree[name], shape, dtype, name)
            out[name] = array[()] if array.ndim == 0 else array
        return out

    def _decode_obs(self, value: Any, shape, dtype, path: str, key: str) -> np.ndarray:
        if key in self._cameras:
            return self._decoded.decode(value, shape, path)
        return decode_array(value, shape, dtype, path)


def _exactly(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    return isinstance(value, np.ndarray | np.generic) and value.dtype == dtype and value.shape == shape


def _check_keys(value: Any, expected: tuple[str, ...], path: str) -> None:
    if not isinstance(value, dict):
        raise BadMessage("transition", f"{path}: expected a map, got {_describe(value)}")
    if value.keys() != set(expected):
        missing, extra = set(expected) - value.keys(), [str(k)[:40] for k in value.keys() - set(expected)]
        raise BadMessage("transition", f"{path}: missing {sorted(missing)}, unexpected {sorted(extra)}")


def _describe(value: Any) -> str:
    if isinstance(value, msgpack.ExtType):
        return f"ext type {value.code}"
    return type(value).__name__
