"""Replay storage: append-only chunk files on disk, memory-mapped for sampling; the files are the
persistence.

Layout of a storage folder (see `layout.py`, `chunks.py`, `commit_log.py`):
    storage.json   spec, chunk size and feature spec the folder was created with
    commits.log    one fsynced record per append: the single source of truth for what is committed
    slots/         observations (state + camera frames), one slot per distinct observation
    rows/          transitions without observations: two slot links, actions, rewards, ...,
                   origin (actor, sequence)
    features/      optional derived features, one record per slot

One writer thread appends; any number of threads sample. Samplers never lock: they read an immutable
`Snapshot` of the committed counts and chunk maps, which the writer replaces after each commit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serl.data.commit_log import CommitLog
from serl.data.episodes import EpisodeMap, SlotPlan
from serl.data.feature_memo import FeatureMemo, feature_records, slot_sources
from serl.data.intake import intake
from serl.data.layout import StorageLayout
from serl.data.results import AppendResult, DiskUsage
from serl.data.schema import Batch, TransitionSpec
from serl.data.snapshot import Snapshot
from serl.data.storage_files import StorageFiles
from serl.durable import lock_folder

FeatureFn = Callable[[dict[str, np.ndarray]], Mapping[str, Any]]


class ReplayStorage:
    """A durable, exactly-once, disk-backed replay buffer sampling uniformly from its newest
    `capacity` transitions.

    Re-opening a folder restores everything committed. `features`/`feature_fn` add per-slot derived
    features (computed once per new slot, batched, at append time), returned as `observations[name]`
    in samples; with `drop_images_in_samples` the camera frames are then left out of samples (`get`
    still returns them). A `feature_memo` shared with another storage computes the features of an
    observation both are given (the very objects) once; `feature_source` names what computes them
    (a frozen trunk's fingerprint), pinned with the folder so features of another source never mix
    in. With `action_limit` an action component beyond +-limit makes a transition invalid.
    """

    def __init__(self, directory: str | Path, spec: TransitionSpec, capacity: int,
                 chunk_size: int = 1024, *,
                 features: Mapping[str, tuple[tuple[int, ...], Any]] | None = None,
                 feature_fn: FeatureFn | None = None, drop_images_in_samples: bool = False,
                 action_limit: float | None = None, feature_memo: FeatureMemo | None = None,
                 feature_source: str | None = None) -> None:
        if capacity < 1 or chunk_size < 1:
            raise ValueError(f"capacity and chunk_size must be >= 1, got {capacity}, {chunk_size}")
        if bool(features) != (feature_fn is not None):
            raise ValueError("features and feature_fn go together")
        self.directory, self.spec, self.capacity = Path(directory), spec, int(capacity)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.layout = StorageLayout.create(spec, chunk_size, features, feature_source)
        self.layout.pin(self.directory)
        self._feature_fn, self._drop_images = feature_fn, drop_images_in_samples
        self._feature_memo = feature_memo
        self._action_limit = action_limit
        self._lock = threading.Lock()  # serialises writers; readers use `_snapshot`
        self._closed = False
        self._folder_lock = lock_folder(self.directory, "ReplayStorage")
        self._log = CommitLog(self.directory / "commits.log")
        self._files = StorageFiles(self.directory, self.layout)
        try:
            self._open()
        except BaseException:
            self._files.close()
            self._log.close()
            os.close(self._folder_lock)
            raise

    def _open(self) -> None:
        """Replay the commit log, map the committed chunks, rebuild the episode map, collect
        garbage."""
        state = self._log.open()
        self._n_slots, self._n_rows = state.n_slots, state.n_rows
        self._watermarks = state.watermarks
        # a row's actor field indexes this (first-commit order)
        self._actors = list(state.watermarks)
        stored_rows = self._files.open(self._n_slots, self._n_rows)
        self._episodes = EpisodeMap.rebuild(stored_rows)
        self._collect_garbage()

    # -- writing -----------------------------------------------------------------------------------

    def append(self, batch: Mapping[str, Any] | Sequence[Mapping[str, Any]], actor_id: str,
               first_sequence: int, on_invalid: str = "raise", keep: Any = None) -> AppendResult:
        """Durably append transitions first_sequence, first_sequence+1, ... of `actor_id`; drop
        duplicates.

        `batch` is a batch dict or a list of transitions. Transitions at or below the actor's
        watermark are duplicates and skipped. Invalid transitions make the call raise ValueError
        with nothing written (`on_invalid="raise"`), or are dropped and counted (`"drop"`; the
        watermark still moves past them). `keep`, a boolean mask over the batch, stores only the
        selected transitions (e.g. the intervention steps, for the demo buffer) while the watermark
        covers the whole batch. Returns once the data and the new watermark are on disk (fsynced).
"""
        with self._lock:
            self._check_open()
            mark = self._watermarks.get(actor_id, -1)
            got = intake(self.spec, batch, mark, first_sequence, keep, on_invalid,
                         self._action_limit)
            if got.last_sequence == mark:  # nothing new: no commit needed
                return AppendResult(0, got.duplicates, 0, mark, skipped=got.skipped)
            # the transitions as given: their observations' identity links pairs without bytes
            given = None if isinstance(batch, Mapping) else [batch[int(s) - first_sequence]
                                                             for s in got.sequences]
            written = None if got.batch is None else self._write(
                got.batch, self._actor_index(actor_id), got.sequences, given)
            self._commit(actor_id, got.last_sequence, written)
            return AppendResult(len(got.sequences), got.duplicates, got.invalid, got.last_sequence,
                                got.first_error, got.skipped)

    def _write(self, batch: Batch, actor: int, sequences: np.ndarray,
               given: list | None) -> tuple[SlotPlan, int, np.ndarray]:
        """Write slots, features and rows past the committed counts and fsync them (not yet
        committed)."""
        obs, next_obs = batch["observations"], batch["next_observations"]
        objects = None if given is None else [(t["observations"], t["next_observations"])
                                              for t in given]
        plan = self._episodes.plan(actor, batch["episode_id"], batch["step"], sequences,
                                   batch["dones"], lambda i: self.layout.record_bytes(obs, i),
                                   lambda i: self.layout.record_bytes(next_obs, i), self._n_slots,
                                   self._files.read_slot, objects)
        new_slots = self.layout.slot_records(batch, plan, self._n_slots)
        rows = self.layout.row_records(batch, plan.obs_slot, plan.next_slot, actor, sequences)
        feats = None
        if self._files.features is not None:
            sources = slot_sources(plan, objects, self._n_slots, len(new_slots))
            feats = feature_records(self.layout, self._feature_fn, new_slots, sources,
                                    self._feature_memo)
        self._files.write_durably(self._n_slots, self._n_rows, new_slots, rows, feats)
        return plan, len(new_slots), rows

    def _commit(self, actor_id: str, mark: int, written: tuple[SlotPlan, int,
                                                               np.ndarray] | None) -> None:
        """Append the commit record, then (only then) make the batch visible and collect garbage."""
        nothing = (None, 0, np.empty(0, self.layout.row_dtype))
        plan, n_new_slots, rows = written if written is not None else nothing
        self._log.append(self._n_slots + n_new_slots, self._n_rows + len(rows), actor_id, mark)
        if actor_id not in self._watermarks:
            self._actors.append(actor_id)
        self._watermarks[actor_id] = mark
        if plan is not None:
            self._episodes.apply(plan)
            self._files.note_rows(self._n_rows, rows)
        self._n_slots += n_new_slots
        self._n_rows += len(rows)
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Delete row chunks wholly older than the window, then slot chunks no stored row points
        into; publish."""
        files, cs = self._files, self.layout.chunk_size
        first_slot = files.collect_garbage(max(0, self._n_rows - self.capacity), self._n_slots)
        self._episodes.forget_below(first_slot)
        oldest = min(files.rows.maps, default=self._n_rows // cs) * cs
        self._snapshot = Snapshot(self.layout, self._n_rows, max(self._n_rows - self.capacity,
                                                                 oldest, 0),
                                  files.rows.maps, files.slots.maps,
                                  files.features.maps if files.features else {},
                                  dict(self._watermarks))

    # -- reading -----------------------------------------------------------------------------------

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A batch drawn uniformly (with replacement) from the newest `capacity` committed
        transitions."""
        snap = self._snapshot_if_open()
        if snap.n_rows <= snap.start:
            raise ValueError("cannot sample from an empty replay storage")
        return snap.read(rng.integers(snap.start, snap.n_rows, size=batch_size),
                         images=not self._drop_images)

    def get(self, indices: Any) -> Batch:
        """Transitions by absolute index (0 = first ever appended), within the window; frames always
        included."""
        snap = self._snapshot_if_open()
        return snap.read(snap.checked(indices), images=True)

    def origins(self, indices: Any) -> list[tuple[str, int]]:
        """(actor id, sequence) of transitions by absolute index: what audits compare with the
        actors' logs."""
        snap = self._snapshot_if_open()
        rows = snap.read_rows(snap.checked(indices))
        return [(self._actors[a], int(s)) for a, s in zip(rows["actor"], rows["sequence"],
                                                          strict=True)]

    def provenance(self, indices: Any) -> tuple[list[str], np.ndarray]:
        """(actor ids, row records) of transitions by absolute index: every field but the
        observations, with `actor` indexing the returned ids and `sequence`; cheap enough to audit a
        whole buffer."""
        snap = self._snapshot_if_open()
        return list(self._actors), snap.read_rows(snap.checked(indices))

    def continued_observation(self, actor_id: str, sequence: int, episode_id: int,
                              step: int) -> dict[str, np.ndarray] | None:
        """The stored `next_observations` of `actor_id`'s transition `sequence` if it is the last
        stored step of episode `episode_id` and is step `step` - 1 (what a transition at `step`
        that continues it observes); else None. Read-only arrays, and the very objects a later
        append recognises, so the pair links without comparing bytes."""
        with self._lock:
            self._check_open()
            key = (self._actor_index(actor_id), int(episode_id))
            tail = self._episodes.tails.get(key)
            if tail is None or (tail.step, tail.sequence) != (int(step) - 1, int(sequence)):
                return None
            if tail.next_obs is None:
                record = self._files.read_slot(tail.slot)
                if record is None:
                    return None
                self._episodes.tails[key] = tail = tail._replace(
                    next_obs=self.layout.observation(record))
            return dict(tail.next_obs)

    # -- state -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Transitions committed in total, ever (monotone; not reduced by the capacity window)."""
        return self._snapshot.n_rows

    @property
    def n_slots(self) -> int:
        """Observation slots committed in total (T + 1 for an episode of T transitions stored in
        order)."""
        return self._n_slots

    @property
    def size(self) -> int:
        """Transitions in the sampling window (at most `capacity`)."""
        snap = self._snapshot
        return snap.n_rows - snap.start

    def watermarks(self) -> dict[str, int]:
        """Each actor's durable watermark: the last sequence acknowledged (appended, dropped or
        invalid)."""
        return dict(self._snapshot.watermarks)

    def bytes_on_disk(self) -> DiskUsage:
        """Disk blocks held by frames + state, by derived features, and by metadata."""
        files = self._files
        json_bytes = (self.directory / "storage.json").stat().st_size
        meta = files.rows.nbytes() + self._log.nbytes() + json_bytes
        return DiskUsage(files.slots.nbytes(), files.features.nbytes() if files.features else 0,
                         meta)

    def close(self) -> None:
        """Close the files. Everything appended is already durable; re-open the folder
        to continue."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._files.close()
            self._log.close()
            os.close(self._folder_lock)

    def __enter__(self) -> ReplayStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"replay storage {self.directory} is closed")

    def _snapshot_if_open(self) -> Snapshot:
        self._check_open()
        return self._snapshot

    def _actor_index(self, actor_id: str) -> int:
        return self._actors.index(actor_id) if actor_id in self._watermarks else len(self._actors)
