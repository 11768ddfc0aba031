"""Record layouts of a replay storage folder, and conversions between batches and records.

Three record kinds, each in its own chunk folder: a *slot* is one observation (state + every camera
frame), a *row* is one transition without its observations (it points at two slots), a *feature*
record holds the derived features of the slot with the same index. `storage.json` pins the spec,
chunk size, feature spec and feature source (a frozen trunk's fingerprint) of the folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from serl.data.episodes import SlotPlan
from serl.data.schema import Batch, Shape, TransitionSpec, fixed_fields
from serl.durable import write_json

FORMAT_VERSION = 1


def _record_dtype(fields: Mapping[str, tuple[Shape, np.dtype]]) -> np.dtype:
    # Packed (no padding), so a record's bytes are exactly its values: byte-for-byte comparison is
    # meaningful.
    return np.dtype([(name, np.dtype(dtype), tuple(shape)) for name, (shape,
                                                                      dtype) in fields.items()])


@dataclass(frozen=True)
class StorageLayout:
    """Record dtypes of one storage folder, from the transition spec and the optional
    feature spec."""

    spec: TransitionSpec
    chunk_size: int
    features: tuple[tuple[str, Shape, str], ...] = ()
    # what computes the features (a frozen trunk's fingerprint); None: unnamed
    feature_source: str | None = None

    @classmethod
    def create(cls, spec: TransitionSpec, chunk_size: int,
               features: Mapping[str, tuple[Shape, Any]] | None,
               feature_source: str | None = None) -> StorageLayout:
        """Normalise the feature spec ({name: (shape, dtype)}) into a hashable, canonical form."""
        feats = tuple(sorted((n, tuple(int(d) for d in s), np.dtype(t).name) for n,
                             (s, t) in (features or {}).items()))
        clash = {n for n, _, _ in feats} & set(spec.observation_spec)
        if clash:
            raise ValueError(f"feature names clash with observation keys: {sorted(clash)}")
        return cls(spec, int(chunk_size), feats, feature_source if feats else None)

    @cached_property
    def slot_dtype(self) -> np.dtype:
        return _record_dtype(self.spec.observation_spec)

    @cached_property
    def feature_dtype(self) -> np.dtype | None:
        return _record_dtype({n: (s, t) for n, s, t in self.features}) if self.features else None

    @cached_property
    def row_dtype(self) -> np.dtype:
        links = {"obs_slot": ((), np.int64), "next_slot": ((), np.int64),
                 # actor: index in first-commit order
                 "actor": ((), np.int32), "sequence": ((), np.int64)}
        return _record_dtype({**links, **fixed_fields(self.spec.action_dim)})

    def to_json(self) -> dict[str, Any]:
        out = {"format": FORMAT_VERSION, "spec": self.spec.to_json(),
               "chunk_size": self.chunk_size, "features": {n: [list(s), t] for n, s,
                                                           t in self.features}}
        if self.feature_source is not None:
            out["feature_source"] = self.feature_source
        return out

    def pin(self, directory: Path) -> None:
        """Write `storage.json` in a new folder, or refuse to open a folder written with a different
        layout."""
        path = directory / "storage.json"
        if not path.exists():
            write_json(path, self.to_json(), indent=1)
            return
        stored = json.loads(path.read_text())
        mine = json.loads(json.dumps(self.to_json()))  # tuples -> lists, as stored
        if stored.get("features") and "feature_source" not in stored and self.feature_source:
            raise ValueError(
                f"{directory} holds cached features from before buffers recorded the trunk that "
                "computed them, so this version cannot tell whether they match this config's "
                "frozen trunk; start a new run (another --run name)")
        if stored.get("feature_source") != mine.get("feature_source"):
            raise ValueError(
                f"{directory} holds features computed by another source (stored "
                f"{stored.get('feature_source')!r}, this config's {mine.get('feature_source')!r}):"
                " the frozen trunk's weights changed (agent.encoder.pretrained_path, its file, or "
                "agent.encoder.trunk_seed), and its cached features would mix with the new ones. "
                "Use the weights the run was trained with, or start a new run")
        diffs = [f"{k}: stored {stored.get(k)!r}, requested {v!r}" for k,
                 v in mine.items() if stored.get(k) != v]
        if diffs:
            raise ValueError(f"{directory} holds a storage with a different layout: "
                             + "; ".join(diffs))

    def record_bytes(self, observations: Mapping[str, np.ndarray], row: int) -> bytes:
        """Row `row` of an observation batch as the bytes of its slot record (what byte-for-byte
        reuse compares)."""
        return b"".join(observations[key][row].tobytes() for key in self.slot_dtype.names)

    def observation(self, record: bytes) -> dict[str, np.ndarray]:
        """A slot record's bytes as an observation of read-only arrays (views of `record`)."""
        slot = np.frombuffer(record, self.slot_dtype)
        return {key: slot[key][0] for key in self.slot_dtype.names}

    def slot_records(self, batch: Batch, plan: SlotPlan, first_new_slot: int) -> np.ndarray:
        """The new slots a plan asks for, in slot order, copied once from the
        batch's observations."""
        obs_rows = plan.new_obs_rows
        out = np.empty(len(obs_rows) + len(plan.next_slot), self.slot_dtype)
        obs_at, next_at = plan.obs_slot[obs_rows] - first_new_slot, plan.next_slot - first_new_slot
        for key in out.dtype.names:
            _put(out[key], obs_at, batch["observations"][key], obs_rows)
            _put(out[key], next_at, batch["next_observations"][key], slice(None))
        return out

    def row_records(self, batch: Batch, obs_slot: np.ndarray, next_slot: np.ndarray, actor: int,
                    sequence: np.ndarray) -> np.ndarray:
        """Transition batch (without its observations) + slot links + origin -> row records."""
        out = np.empty(len(obs_slot), self.row_dtype)
        out["obs_slot"], out["next_slot"] = obs_slot, next_slot
        out["actor"], out["sequence"] = actor, sequence
        for name in fixed_fields(self.spec.action_dim):
            out[name] = batch[name]
        return out

    def feature_records(self, features: Mapping[str, Any], n: int) -> np.ndarray:
        """Output of a feature function for n slots -> feature records (shapes checked, dtypes
        cast)."""
        out = np.empty(n, self.feature_dtype)
        for name, shape, dtype in self.features:
            if name not in features:
                raise ValueError(f"feature_fn did not return feature {name!r}")
            value = np.asarray(features[name])
            if value.shape != (n, *shape):
                raise ValueError(f"feature {name!r}: shape {value.shape}, expected {(n, *shape)}")
            out[name] = value.astype(dtype, copy=False)
        return out

    def rows_to_batch(self, rows: np.ndarray, obs: dict[str, np.ndarray],
                      next_obs: dict[str, np.ndarray]) -> Batch:
        """Row records + gathered observations -> a transition batch (contiguous arrays)."""
        batch: Batch = {name: np.ascontiguousarray(rows[name])
                        for name in fixed_fields(self.spec.action_dim)}
        batch["observations"], batch["next_observations"] = obs, next_obs
        return batch


def _put(field: np.ndarray, at: np.ndarray, source: Any, rows: np.ndarray | slice) -> None:
    """field[at] = source[rows], for a stacked array or per-row frames (`intake.FrameRows`)."""
    if isinstance(source, np.ndarray):
        field[at] = source[rows]
        return
    rows = range(len(source))[rows] if isinstance(rows, slice) else rows.tolist()
    for target, row in zip(at.tolist(), rows, strict=True):
        field[target] = source[row]
