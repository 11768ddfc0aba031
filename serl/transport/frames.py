"""Camera frames on the wire: JPEG at a set quality, or lossless raw arrays (`FrameCodec`), and the
actor's cache that makes the policy's view and the wire share one JPEG encode per frame
(`FrameCache`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import msgpack
import numpy as np

from serl.transport.wire import JPEG_EXT, BadMessage, decode_array, encode_array

# frame headers (not DHT, JPG, DAC)
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_encode(frame: np.ndarray, quality: int) -> bytes:
    image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.shape[2] == 3 else frame[:, :, 0]
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def _jpeg_dims(data: bytes) -> tuple[int, int, int]:
    """(height, width, components) from a JPEG's frame header, read before decoding so a forged size
    cannot make the decoder allocate a huge image."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        raise BadMessage("jpeg", "not a complete JPEG")
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in _SOF_MARKERS and i + 10 <= len(data):
            return int.from_bytes(data[i + 5:i + 7],
                                  "big"), int.from_bytes(data[i + 7:i + 9], "big"), data[i + 9]
        if marker == 0xDA:  # start of scan: no frame header came first
            break
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    raise BadMessage("jpeg", "no frame header")


def _jpeg_decode(data: bytes, shape: tuple[int, ...], path: str) -> np.ndarray:
    h, w, c = _jpeg_dims(data)
    if (h, w, c) != shape:
        raise BadMessage("jpeg",
                         f"{path}: JPEG of {h}x{w}x{c}, expected {'x'.join(map(str, shape))}")
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
    """How camera frames travel: JPEG at `jpeg_quality` (1..100), or lossless raw arrays when it is
    None.

    Encoding is deterministic (the same frame always gives the same bytes), so the learner decodes
    exactly what `roundtrip` gave the policy, and a frame sent again in full (a transition that
    could not refer to its predecessor's) decodes to identical arrays.
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
        return msgpack.ExtType(JPEG_EXT, _jpeg_encode(np.ascontiguousarray(frame),
                                                      self.jpeg_quality))

    def roundtrip(self, frame: np.ndarray) -> np.ndarray:
        """What the learner will decode from `frame`: run it on frames before inference."""
        return jpeg_roundtrip(frame, self.jpeg_quality) if self._jpeg_ok(frame) else frame


def jpeg_roundtrip(frame: np.ndarray, quality: int) -> np.ndarray:
    """`frame` (uint8 H x W x 3 RGB, or x 1) JPEG-encoded at `quality` and decoded again
    (read-only)."""
    frame = np.ascontiguousarray(frame)
    return _jpeg_decode(_jpeg_encode(frame, quality), frame.shape, "frame")


# A frame is seen twice on the actor (the policy's round trip, then the wire) and JPEG-encoded once:
# `FrameCache` keeps the bytes and their decoding for both.

class FrameMemo:
    """Recent results of a function of a frame, by frame object, each checked against a copy of
    the frame's content taken when it was computed: a camera that refills one buffer in place
    never gets a stale result, and nothing is hashed."""

    def __init__(self, size: int):
        self._entries: deque[tuple[np.ndarray, bytes, Any]] = deque(maxlen=size)

    def get(self, frame: np.ndarray, compute: Callable[[np.ndarray], Any]) -> Any:
        content = None
        for cached, snapshot, result in self._entries:
            if cached is frame:
                content = frame.tobytes() if content is None else content
                if content == snapshot:
                    return result
        result = compute(frame)
        self._entries.append((frame, frame.tobytes() if content is None else content, result))
        return result


class FrameCache:
    """Each frame JPEG-encoded once on the actor: `roundtrip` (what the policy sees) and `encoded`
    (what the wire carries) share the bytes, by frame object checked against its content
    (`FrameMemo`). Frames JPEG cannot hold, and lossless codecs, pass through uncached. One thread
    (the actor's)."""

    def __init__(self, codec: FrameCodec, size: int = 8):
        self.codec, self._memo = codec, FrameMemo(size)

    def encoded(self, frame: np.ndarray) -> msgpack.ExtType:
        """`codec.encode(frame)`."""
        if not self.codec._jpeg_ok(frame):
            return encode_array(frame)
        return self._memo.get(frame, self._entry)[0]

    def roundtrip(self, frame: np.ndarray) -> np.ndarray:
        """`codec.roundtrip(frame)`: the decoding of the very bytes `encoded` returns."""
        if not self.codec._jpeg_ok(frame):
            return frame
        entry = self._memo.get(frame, self._entry)
        if entry[1] is None:
            entry[1] = _jpeg_decode(entry[0].data, frame.shape, "frame")
        return entry[1]

    def _entry(self, frame: np.ndarray) -> list:
        return [self.codec.encode(frame), None]  # [JPEG ext value, its decoding once asked for]


def decode_frame(value: Any, shape: tuple[int, ...], path: str) -> np.ndarray:
    """A camera frame from the wire (JPEG or lossless), read-only; BadMessage if it is not
    `shape`."""
    if isinstance(value, msgpack.ExtType) and value.code == JPEG_EXT:
        return _jpeg_decode(value.data, shape, path)
    return decode_array(value, shape, np.dtype(np.uint8), path)  # a lossless frame
