"""The one transition schema, its validation, and helpers to stack transitions into batches and
back.

A transition is a dict of numpy values (see DESIGN.md, "Transition schema"); a batch is the same
dict with a leading axis on every array. Validation is strict (exact dtype and shape, no casting)
because it guards the wire and the disk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

Transition = dict[str, Any]
Batch = dict[str, Any]
Shape = tuple[int, ...]

OBSERVATION_FIELDS = ("observations", "next_observations")


def fixed_fields(action_dim: int) -> dict[str, tuple[Shape, np.dtype]]:
    """Every field besides the observations: name -> (shape of one transition, dtype)."""
    f32, i32, i64 = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64)
    return {
        "actions": ((action_dim,), f32),
        "rewards": ((), f32),
        "masks": ((), f32),  # 1 - terminated
        "dones": ((), np.dtype(bool)),  # terminated or truncated
        "intervened": ((), np.dtype(bool)),
        "grasp_penalty": ((), f32),
        "episode_id": ((), i64),
        "step": ((), i32),  # index within the episode
        "policy_version": ((2,), i64),  # (incarnation, update step)
        "classifier_version": ((), i32),
        "timestamp": ((), np.dtype(np.float64)),
    }


@dataclass(frozen=True)
class TransitionSpec:
    """Shapes and dtypes of one transition, from an observation spec {key: (shape, dtype)} and the
    action size.

    `observations` may be given as a mapping; it is stored as a sorted tuple of (key, shape, dtype
    name) so the spec is hashable and has one canonical JSON form (its `fingerprint` is what a
    transport handshake compares).
"""

    observations: Any
    action_dim: int

    def __post_init__(self) -> None:
        items = self.observations.items() if isinstance(self.observations, Mapping) else (
            (k, (s, d)) for k, s, d in self.observations)
        canonical = tuple(sorted((str(k), tuple(int(n) for n in s), np.dtype(d).name) for k,
                                 (s, d) in items))
        if not canonical:
            raise ValueError("observation spec is empty")
        if self.action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {self.action_dim}")
        object.__setattr__(self, "observations", canonical)
        object.__setattr__(self, "action_dim", int(self.action_dim))

    @classmethod
    def from_spaces(cls, observation_space: Any, action_space: Any) -> TransitionSpec:
        """Build from gymnasium spaces: a Dict of Boxes (the flattened policy observation) and a Box
        action space."""
        obs = {k: (space.shape, space.dtype) for k, space in observation_space.spaces.items()}
        return cls(obs, int(np.prod(action_space.shape)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TransitionSpec:
        """Inverse of `to_json`."""
        return cls({k: (tuple(s), d) for k, (s, d) in data["observations"].items()},
                   data["action_dim"])

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form (stored beside the buffer, sent in handshakes)."""
        return {"observations": {k: [list(s), d] for k, s, d in self.observations},
                "action_dim": self.action_dim}

    def fingerprint(self) -> str:
        """A short hash of the canonical JSON form: equal specs, equal fingerprints."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def observation_spec(self) -> dict[str, tuple[Shape, np.dtype]]:
        """{key: (shape, dtype)} of one observation."""
        return {k: (s, np.dtype(d)) for k, s, d in self.observations}

    @property
    def camera_keys(self) -> tuple[str, ...]:
        """Observation keys holding camera frames (uint8, H x W x 3)."""
        return tuple(k for k, s, d in self.observations if d == "uint8" and len(s) == 3)

    def fields(self) -> dict[tuple[str, ...], tuple[Shape, np.dtype]]:
        """Every leaf of a transition: path -> (shape, dtype); observation leaves have two-element
        paths."""
        out: dict[tuple[str, ...], tuple[Shape, np.dtype]] = {}
        for top in OBSERVATION_FIELDS:
            out.update({(top, k): v for k, v in self.observation_spec.items()})
        out.update({(name,): v for name, v in fixed_fields(self.action_dim).items()})
        return out

    def validate(self, transition: Mapping[str, Any]) -> None:
        """Raise ValueError naming every field that is missing, unexpected, of wrong dtype or shape,
        or non-finite."""
        _raise_if(self.problems(transition))

    def problems(self, transition: Mapping[str, Any]) -> list[str]:
        """What `validate` would complain about, one "field: what is wrong" message each (empty when
        valid)."""
        problems = self.structure_problems(transition)
        return problems or list(self.nonfinite_rows(stack([transition])).values())

    def structure_problems(self, transition: Mapping[str, Any]) -> list[str]:
        """Missing or unexpected keys, wrong dtypes or shapes of one transition (values are not
        looked at)."""
        if self._matches(transition):  # the common case, without building messages
            return []
        return _structure_errors(transition, self._tree(), (), "")

    def _matches(self, transition: Mapping[str, Any]) -> bool:
        obs, fixed = self._leaves
        try:
            if not isinstance(transition, Mapping) or len(transition) != len(fixed) + 2:
                return False
            for top in OBSERVATION_FIELDS:
                value = transition[top]
                if not isinstance(value, Mapping) or len(value) != len(obs) or not _leaves_match(
                        value, obs):
                    return False
            return _leaves_match(transition, fixed)
        except KeyError:
            return False

    @cached_property
    def _leaves(self) -> tuple[tuple[tuple[str, Shape, np.dtype], ...], ...]:
        """(observation leaves, other leaves) of one transition: (key, shape, dtype) each."""
        fixed = fixed_fields(self.action_dim)
        return (tuple((k, tuple(s), np.dtype(d)) for k, s, d in self.observations),
                tuple((k, tuple(s), np.dtype(d)) for k, (s, d) in fixed.items()))

    def validate_batch(self, batch: Mapping[str, Any]) -> int:
        """Validate a batch (leading axis on every leaf); return its length. Non-finite rows are
        named by index."""
        n = self.check_structure(batch)
        _raise_if([f"row {i}: {msg}" for i, msg in self.nonfinite_rows(batch).items()])
        return n

    def check_structure(self, batch: Mapping[str, Any]) -> int:
        """Raise ValueError if keys, dtypes or shapes of a batch are wrong; return its length."""
        n = batch_len(batch)
        _raise_if(_structure_errors(batch, self._tree(), (n,), ""))
        return n

    def nonfinite_rows(self, batch: Mapping[str, Any]) -> dict[int, str]:
        """{row: message} for rows with a NaN or infinity in a floating field (a structurally valid
        batch)."""
        bad: dict[int, str] = {}
        for path, (_, dtype) in self.fields().items():
            if dtype.kind != "f":
                continue
            value = get_path(batch, path)
            finite = np.isfinite(value).reshape(len(value), -1).all(axis=1)
            for row in np.flatnonzero(~finite):
                bad.setdefault(int(row), f"{'/'.join(path)}: non-finite value")
        return dict(sorted(bad.items()))

    def action_rows_outside(self, batch: Mapping[str, Any], limit: float) -> dict[int, str]:
        """{row: message} for rows whose action has a component beyond +-`limit` (a structurally
        valid batch)."""
        actions = np.nan_to_num(np.asarray(batch["actions"]).reshape(batch_len(batch), -1))
        return {int(r): f"actions: outside [-{limit:g}, {limit:g}] (max |a| = "
                        f"{np.abs(actions[r]).max():.3g})"
                for r in np.flatnonzero((np.abs(actions) > limit * (1 + 1e-6)).any(axis=1))}

    def _tree(self) -> dict[str, Any]:
        obs = dict(self.observation_spec)
        return {"observations": obs, "next_observations": obs, **fixed_fields(self.action_dim)}


def _leaves_match(tree: Mapping[str, Any], leaves) -> bool:
    for key, shape, dtype in leaves:
        value = tree[key]
        if not isinstance(value, np.ndarray | np.generic) or value.dtype != dtype or (
                value.shape != shape):
            return False
    return True


def _raise_if(errors: list[str]) -> None:
    if errors:
        raise ValueError("invalid transition: " + "; ".join(errors))


def _structure_errors(value: Any, expected: Any, leading: Shape, path: str) -> list[str]:
    """Messages for every structural mismatch between `value` and the expected tree of (shape,
    dtype) leaves."""
    if isinstance(expected, dict):
        if not isinstance(value, Mapping):
            return [f"{path or 'transition'}: expected a dict, got {type(value).__name__}"]
        errors = [f"{_join(path, k)}: missing" for k in sorted(expected.keys() - value.keys())]
        errors += [f"{_join(path, k)}: unexpected key"
                   for k in sorted(map(str, value.keys() - expected.keys()))]
        for k in sorted(expected.keys() & value.keys()):
            errors += _structure_errors(value[k], expected[k], leading, _join(path, k))
        return errors
    shape, dtype = expected
    if not isinstance(value, np.ndarray | np.generic):
        return [f"{path}: expected a numpy {dtype} value, got {type(value).__name__}"]
    errors = []
    if value.dtype != dtype:
        errors.append(f"{path}: dtype {value.dtype}, expected {dtype}")
    if value.shape != leading + shape:
        errors.append(f"{path}: shape {value.shape}, expected {leading + shape}")
    return errors


def _join(path: str, key: str) -> str:
    return f"{path}/{key}" if path else key


def get_path(tree: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The leaf at `path` in a nested dict."""
    for key in path:
        tree = tree[key]
    return tree


def map_tree(fn: Callable[..., Any], *trees: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `fn` leafwise over nested dicts with the same keys (the first tree's keys)."""
    return {k: map_tree(fn, *(t[k] for t in trees)) if isinstance(v, Mapping)
            else fn(*(t[k] for t in trees)) for k, v in trees[0].items()}


def batch_len(batch: Mapping[str, Any]) -> int:
    """Length of the leading axis: of `rewards` when present (0-d per transition, so a lone
    transition is never mistaken for a batch), else of the first leaf."""
    leaf = batch["rewards"] if "rewards" in batch else _first_leaf(batch)
    if not isinstance(leaf, np.ndarray) or leaf.ndim == 0:
        raise ValueError(f"not a batch: a {type(leaf).__name__} leaf has no leading axis")
    return len(leaf)


def _first_leaf(tree: Mapping[str, Any]) -> Any:
    for value in tree.values():
        return _first_leaf(value) if isinstance(value, Mapping) else value
    raise ValueError("not a batch: empty dict")


def stack(transitions: Sequence[Mapping[str, Any]]) -> Batch:
    """Stack transitions (or batches' rows) into one batch dict with a leading axis."""
    if not transitions:
        raise ValueError("cannot stack an empty list of transitions")
    return map_tree(lambda *leaves: np.stack(leaves), *transitions)


def unstack(batch: Mapping[str, Any]) -> list[Transition]:
    """Split a batch into its transitions (numpy scalars for 0-d fields)."""
    return [map_tree(lambda leaf, i=i: leaf[i], batch) for i in range(batch_len(batch))]


def take(batch: Mapping[str, Any], index: Any) -> Batch:
    """Rows of a batch selected by a slice, an index array or a boolean mask."""
    return map_tree(lambda leaf: leaf[index], batch)


def concatenate(batches: Sequence[Mapping[str, Any]]) -> Batch:
    """Concatenate batches along the leading axis (they must have the same keys, at every level)."""
    keys = [_paths(b) for b in batches]
    for other in keys[1:]:
        if other != keys[0]:
            raise ValueError(f"batches have different keys: {sorted(keys[0] ^ other)}")
    return map_tree(lambda *leaves: np.concatenate(leaves), *batches)


def _paths(tree: Mapping[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in tree.items():
        out |= _paths(v, f"{prefix}{k}/") if isinstance(v, Mapping) else {prefix + k}
    return out
