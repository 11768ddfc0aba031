"""Policy weights on the wire: flax's msgpack serialization of the parameter tree's state dict.

The receiver checks the decoded tree against a template (its own policy's parameters) before
anything uses it: same keys at every level, and every leaf an array of the template leaf's exact
shape and dtype. Without a template every leaf must still be a plain numeric array. Decoding never
unpickles and never raises anything but `BadMessage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import serialization

from serl.transport.wire import ALLOWED_DTYPES, BadMessage

Params = Any


def encode_params(params: Params) -> bytes:
    """msgpack bytes of `params` (numpy or JAX leaves; lists and tuples become maps keyed "0", "1",
    ...)."""
    # copies every leaf into the bytes
    return serialization.msgpack_serialize(serialization.to_state_dict(params))


class ParamsDecoder:
    """Decodes weights and checks them against `template` (None: any tree of numeric arrays is
    accepted)."""

    def __init__(self, template: Params | None = None, max_bytes: int = 1 << 30):
        self.template, self.max_bytes = template, int(max_bytes)
        self._expected = (None if template is None
                          else _shapes(serialization.to_state_dict(template)))

    def decode(self, data: Any) -> Params:
        """Params restored into the template's structure (its container types), read-only numpy
        leaves."""
        if not isinstance(data, bytes):
            raise BadMessage("weights", f"expected bytes, got {type(data).__name__}")
        if len(data) > self.max_bytes:
            raise BadMessage("size", f"weights of {len(data)} bytes, limit {self.max_bytes}")
        try:
            state = serialization.msgpack_restore(data)
        except Exception as e:  # noqa: BLE001 -- whatever the decoder trips on, the message is bad
            raise BadMessage("weights", f"undecodable ({type(e).__name__})") from None
        problems = _problems(state, self._expected, "params")
        if problems:
            raise BadMessage("weights",
                             "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""))
        if self.template is None:
            return state
        try:
            return serialization.from_state_dict(self.template, state)
        except Exception as e:  # noqa: BLE001
            raise BadMessage("weights", f"does not fit the template ({type(e).__name__})") from None


def _shapes(state: Any) -> Any:
    """The template's state dict with each leaf replaced by (shape, dtype)."""
    if isinstance(state, Mapping):
        return {k: _shapes(v) for k, v in state.items()}
    dtype = np.dtype(state.dtype) if hasattr(state, "dtype") else np.asarray(state).dtype
    return tuple(np.shape(state)), dtype


def _problems(value: Any, expected: Any, path: str) -> list[str]:
    """Mismatches between a restored tree and the expected (shape, dtype) tree (None: numeric arrays
    anywhere)."""
    if isinstance(expected, dict) or (expected is None and isinstance(value, dict)):
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        if expected is not None and value.keys() != expected.keys():
            missing, extra = sorted(expected.keys()
                                    - value.keys()), sorted(map(str,
                                                                value.keys() - expected.keys()))
            return [f"{path}: missing {missing[:5]}, unexpected {extra[:5]}"]
        return [p for k, v in value.items() for p in _problems(v,
                                                               None if expected is None
                                                               else expected[k], f"{path}/{k}")]
    if not isinstance(value, np.ndarray | np.generic):  # 0-d leaves travel as numpy scalars
        return [f"{path}: expected an array, got {type(value).__name__}"]
    if expected is None:
        ok = value.dtype.str in ALLOWED_DTYPES or value.dtype.name == "bfloat16"
        return [] if ok else [f"{path}: dtype {value.dtype} is not numeric"]
    shape, dtype = expected
    if value.shape != shape or value.dtype != dtype:
        return [f"{path}: {value.dtype}{list(value.shape)}, expected {dtype}{list(shape)}"]
    return []
