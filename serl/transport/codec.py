"""Wire codec for transitions: msgpack maps of numpy arrays (`wire`), camera frames as JPEG or raw
(`frames`), validated against the `TransitionSpec` on the way in and on the way out.

A transition record is a map of every schema field. Its `observations` are either a map like
`next_observations`, or nil: "exactly the `next_observations` of this actor's previous transition"
(sequence - 1, the same episode one step earlier), so each frame travels once (`pairs` decides when
the actor may say so and rebuilds the pair on the learner).

Never pickle: see `wire` for what a decoded message may hold and the ext types it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from serl.data.schema import OBSERVATION_FIELDS, TransitionSpec, fixed_fields
from serl.transport.frames import FrameCache, FrameCodec, decode_frame, jpeg_roundtrip
from serl.transport.wire import (
    ALLOWED_DTYPES,
    ARRAY_EXT,
    JPEG_EXT,
    BadMessage,
    decode_array,
    describe,
    encode_array,
    unpack,
)

# The names this module has always offered; their homes are `wire` and `frames`.
__all__ = [
    "ALLOWED_DTYPES",
    "ARRAY_EXT",
    "JPEG_EXT",
    "BadMessage",
    "FrameCodec",
    "PREVIOUS",
    "TransitionCodec",
    "decode_array",
    "encode_array",
    "jpeg_roundtrip",
    "unpack",
]


class _Previous:
    """The type of `PREVIOUS`."""

    def __repr__(self) -> str:
        return "PREVIOUS"


# A decoded transition's `observations` when its record refers to the previous transition's
# `next_observations` (see the module docstring).
PREVIOUS = _Previous()


class TransitionCodec:
    """Encodes transitions of `spec` for the wire and decodes them back, validated against the spec.
    `cache` (the actor's policy view's, when it has one) holds each frame's JPEG, so a frame is
    encoded once. One thread per codec."""

    def __init__(self, spec: TransitionSpec, frames: FrameCodec = FrameCodec(),
                 max_bytes: int = 16 << 20, cache: FrameCache | None = None):
        if cache is not None and cache.codec != frames:
            raise ValueError(f"the frame cache encodes with {cache.codec}, the codec with {frames}")
        self.spec, self.frames, self.max_bytes = spec, frames, int(max_bytes)
        self._cameras = frozenset(spec.camera_keys)
        self._fixed = fixed_fields(spec.action_dim)
        self._obs = spec.observation_spec
        self._cache = cache or FrameCache(frames, 4 * max(1, len(self._cameras)))

    def encode(self, transition: Mapping[str, Any], previous: bool = False) -> bytes:
        """msgpack bytes of one transition; with `previous`, its observations travel as a reference
        to the previous transition's next observations (the caller knows they are those: see
        `pairs.Continuity`). ValueError (naming the fields) if it does not match the spec exactly:
        the actor finds its own bugs instead of the learner dropping its data."""
        try:
            tree = self._encode_tree(transition, previous)
        except (KeyError, TypeError, AttributeError, ValueError):
            tree = None
        if tree is None:  # the fast path only says "no": the spec names what is wrong
            problems = self.spec.structure_problems(transition) or ["not encodable"]
            raise ValueError("cannot send transition: " + "; ".join(problems))
        return msgpack.packb(tree, use_bin_type=True)

    def _encode_tree(self, transition: Mapping[str, Any], previous: bool) -> dict[str, Any] | None:
        """The msgpack tree, or None if any key, type, dtype or shape differs from the spec."""
        if len(transition) != len(self._fixed) + 2:
            return None
        tree: dict[str, Any] = {}
        for top in OBSERVATION_FIELDS:
            obs = transition[top]
            if previous and top == "observations":
                tree[top] = None
                continue
            if len(obs) != len(self._obs):
                return None
            tree[top] = out = {}
            for key, (shape, dtype) in self._obs.items():
                value = obs[key]
                if not _exactly(value, shape, dtype):
                    return None
                if key in self._cameras:
                    out[key] = self._cache.encoded(value)
                else:
                    out[key] = encode_array(value)
        for name, (shape, dtype) in self._fixed.items():
            value = transition[name]
            if not _exactly(value, shape, dtype):
                return None
            tree[name] = encode_array(value)
        return tree

    def decode(self, data: Any) -> dict[str, Any]:
        """The transition in `data`: read-only arrays, numpy scalars for 0-d fields, `observations`
        `PREVIOUS` when the record refers to the previous transition's. BadMessage if anything is
        off."""
        tree = unpack(data, self.max_bytes)
        _check_keys(tree, ("observations", "next_observations", *self._fixed), "transition")
        out: dict[str, Any] = {}
        for top in OBSERVATION_FIELDS:
            obs = tree[top]
            if obs is None and top == "observations":
                out[top] = PREVIOUS
                continue
            _check_keys(obs, tuple(self._obs), top)
            out[top] = {k: self._decode_obs(obs[k], shape, dtype, f"{top}/{k}", k)
                        for k, (shape, dtype) in self._obs.items()}
        for name, (shape, dtype) in self._fixed.items():
            array = decode_array(tree[name], shape, dtype, name)
            out[name] = array[()] if array.ndim == 0 else array
        return out

    def _decode_obs(self, value: Any, shape, dtype, path: str, key: str) -> np.ndarray:
        if key in self._cameras:
            return decode_frame(value, shape, path)
        return decode_array(value, shape, dtype, path)


def _exactly(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    return isinstance(value,
                      np.ndarray | np.generic) and value.dtype == dtype and value.shape == shape


def _check_keys(value: Any, expected: tuple[str, ...], path: str) -> None:
    if not isinstance(value, dict):
        raise BadMessage("transition", f"{path}: expected a map, got {describe(value)}")
    if value.keys() != set(expected):
        missing, extra = set(expected) - value.keys(), [str(k)[:40] for k in value.keys()
                                                        - set(expected)]
        raise BadMessage("transition",
                         f"{path}: missing {sorted(missing)}, unexpected {sorted(extra)}")
