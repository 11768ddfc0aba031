"""Intake: batches from the transport are validated by the replay storage, appended durably (the
online buffer; intervention steps also to the demo buffer) and only then acknowledged. A batch whose
write fails (disk full) stays unacknowledged and is retried in order; `DiskErrors` is the policy for
every failed write of the learner. With `learner.prior_fraction` > 0 a third buffer, `prior`, holds
the prior episodes the reward classifier judged at start (`serl.learner.prior`); at 0 it is None and
its folder is never opened."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from serl.data import ReplayStorage, TransitionSpec
from serl.data.demos import UnusableDemos, load_demos
from serl.data.feature_memo import FeatureMemo
from serl.data.intake import INVALID
from serl.faults import fault_point
from serl.learner.config import DiskWriteError, LearnerConfig
from serl.learner.prior import UNLABELLED, PriorSource, load_prior
from serl.transport.interfaces import Continues, IncomingBatch, TransitionSource

log = logging.getLogger("serl.learner")
DISK_POLICIES = ("continue", "stop")


class DiskErrors:
    """Counts failed writes (buffers, checkpoints, logs); with policy "stop" raises DiskWriteError,
    with "continue" logs and lets the caller retry later."""

    def __init__(self, policy: str, latest_checkpoint: Callable[[], int | None]):
        if policy not in DISK_POLICIES:
            raise ValueError(f"learner.on_disk_error must be 'continue' or 'stop', got {policy!r}")
        self.policy, self.count, self._latest = policy, 0, latest_checkpoint

    def report(self, what: str, err: OSError) -> None:
        """Count and report a failed write; with `on_disk_error="stop"` raise DiskWriteError."""
        self.count += 1
        message = (f"{what} failed: {err} (errno {err.errno}). Buffers hold everything up to the "
                   f"last stored batch; the latest good checkpoint is update {self._latest()}.")
        if self.policy == "stop":
            raise DiskWriteError(message + " Stopping (learner.on_disk_error=stop): free disk "
                                 "space, then --resume.")
        log.error("%s Training continues and retries the write (learner.on_disk_error=continue).",
                  message)


def intervened(transition) -> bool:
    """The transition's `intervened` flag (False when malformed: validation drops it later)."""
    try:
        return bool(np.asarray(transition["intervened"]).reshape(()))
    except (KeyError, TypeError, ValueError):
        return False


def merged(batches: list[IncomingBatch], limit: int = 128) -> list[IncomingBatch]:
    """Each actor's consecutive batches joined, up to `limit` transitions each: one durable append
    (and its fsyncs) instead of several. Each actor's order is kept. The limit is two of an actor's
    batches (64 each): more would hold back acknowledgements its next batches wait for."""
    out: list[IncomingBatch] = []
    newest: dict[str, int] = {}  # actor id -> index in `out` of its newest batch
    for batch in batches:
        j = newest.get(batch.actor_id)
        if j is not None and out[j].last_sequence + 1 == batch.first_sequence and (
                len(out[j].transitions) + len(batch.transitions) <= limit):
            out[j] = IncomingBatch(batch.actor_id, out[j].first_sequence,
                                   [*out[j].transitions, *batch.transitions])
        else:
            newest[batch.actor_id] = len(out)
            out.append(batch)
    return out


class Intake:
    """The online and demo buffers (and the prior buffer, when configured) under `run_dir/buffers`
    and everything that fills them."""

    def __init__(self, source: TransitionSource, spec: TransitionSpec, cfg: LearnerConfig,
                 run_dir: Path, disk: DiskErrors, storage_options: dict):
        self.source, self.spec, self.cfg, self.disk = source, spec, cfg, disk
        # Actions are in the policy's [-1, 1] scale (DESIGN): anything beyond is rejected at
        # insertion.
        buffers = Path(run_dir) / "buffers"
        # an intervention step's frames pass the frozen trunk once, for both buffers
        options = {"action_limit": 1.0, "feature_memo": FeatureMemo(), **storage_options}
        self.online = ReplayStorage(buffers / "online", spec, cfg.buffer_capacity,
                                    cfg.buffer_chunk_size, **options)
        self.demo = ReplayStorage(buffers / "demo", spec, cfg.buffer_capacity,
                                  cfg.buffer_chunk_size, **options)
        self.prior = None if cfg.prior_fraction <= 0 else ReplayStorage(
            buffers / "prior", spec, cfg.buffer_capacity, cfg.buffer_chunk_size, **options)
        self.invalid_transitions = 0
        # batches whose append failed, in arrival order, retried before new ones
        self._unstored: deque = deque()
        self._retry_at = 0.0

    def load_demos(self, folder: Path, base=None) -> int:
        """Append every demo file to the demo buffer, each as its own source: reloading (on resume)
        adds nothing twice. A corrupt or foreign file is reported by name and skipped; a folder of
        files none of which loads is an `UnusableDemos` error. With a base policy (`base`, a
        `FileBasePolicy`), files recorded without its action get it here (`annotate`)."""
        episodes, problems = load_demos(folder, self.spec)
        if base is not None and problems:
            episodes, problems = with_base_actions(folder, self.spec, base, episodes)
        if problems and not episodes:
            raise UnusableDemos(
                f"none of the {len(problems)} demo files in {folder} loads for this config, "
                f"e.g. {problems[0]}; record them again for it (serl record-demos TASK "
                "--demos-dir FOLDER) or name another folder (--demos-dir)")
        for problem in problems:
            log.warning("skipped a demo file: %s", problem)
        for name in [n for n, b in episodes.items()
                     if (b["classifier_version"] == UNLABELLED).any()]:
            # zero placeholder rewards must never pass for a demonstration's
            log.warning("skipped a demo file: %s.npz is an unlabelled prior episode (reward "
                        "unknown): its folder goes in learner.prior_dir", name)
            del episodes[name]
        added = sum(self.demo.append(batch, f"demo:{name}", 0).appended
                    for name, batch in episodes.items())
        log.info("demo buffer: %d transitions from %d files in %s (%d new)", len(self.demo),
                 len(episodes), folder, added)
        return added

    def load_prior(self, source: PriorSource) -> int:
        """Judge the prior episodes not yet in the prior buffer and append them (`load_prior`)."""
        added = load_prior(self.prior, source, self.spec, self.cfg.prior_fraction)
        if self.prior.size < self.cfg.min_prior:
            log.warning("the prior buffer holds %d transitions, fewer than learner.min_prior (%d): "
                        "batches take nothing from it", self.prior.size, self.cfg.min_prior)
        return added

    def ingest(self, timeout: float) -> int:
        """Receive, store durably, acknowledge. Returns the number of batches received.

        A batch whose write fails (disk full) is not acknowledged: it and every later batch are
        kept, in order, and retried every `disk_retry_s` (the actors hold them in their spools
        meanwhile), or the run stops."""
        if self._unstored and time.monotonic() < self._retry_at:
            # the disk is still failing: train on what is stored, take nothing new
            return 0
        received = [*self._unstored, *self.source.receive(self.cfg.receive_batches, timeout)]
        self._unstored.clear()
        batches = merged(received)
        for i, batch in enumerate(batches):
            # resolved once, and kept for a retry after a failed write
            batch = batches[i] = IncomingBatch(batch.actor_id, batch.first_sequence,
                                               self._continued(batch))
            try:
                self._store(batch)
            except OSError as err:
                self._unstored.extend(batches[i:])
                self.disk.report(f"storing {batch.actor_id}'s transitions "
                                 f"{batch.first_sequence}..{batch.last_sequence}", err)
                self._retry_at = time.monotonic() + self.cfg.disk_retry_s
                break
            fault_point("after_append")
            self.source.acknowledge(batch.actor_id, batch.last_sequence)
        return len(received)

    def _store(self, batch) -> None:
        """The demo buffer's write first, then the online buffer's: a learner killed between them
        gets the batch again (unacknowledged), and the online tail still precedes it, so a resent
        reference (`Continues`) resolves and both buffers end up with it once. (The other order
        would leave a resent intervention step that opens a batch unresolvable for the demo
        buffer.)"""
        transitions = batch.transitions
        steps = np.array([intervened(t) for t in transitions], bool)
        # intervention steps go to the demo buffer too; its watermark covers the batch
        if steps.any():
            demo = self.demo.append(transitions, batch.actor_id, batch.first_sequence,
                                    on_invalid="drop", keep=steps)
            if demo.invalid:
                log.warning("dropped %d invalid intervention steps of %s from the demo buffer: "
                            "%s", demo.invalid, batch.actor_id, demo.first_error)
            fault_point("between_buffers")
        # A list, not a stacked batch: the storage validates each transition and drops only the
        # bad ones.
        result = self.online.append(transitions, batch.actor_id, batch.first_sequence,
                                    on_invalid="drop")
        if result.invalid:
            self.invalid_transitions += result.invalid
            log.warning("dropped %d invalid transitions from %s: %s", result.invalid,
                        batch.actor_id, result.first_error)

    def _continued(self, batch) -> list:
        """The batch's transitions with each `Continues` (observations the transport could not
        rebuild: it restarted, or the actor resent after a reconnect) resolved from the online
        buffer's copy of the predecessor's next observations, or made invalid, naming why."""
        out, mark = list(batch.transitions), self.online.watermarks().get(batch.actor_id, -1)
        for k, t in enumerate(out):
            sequence = batch.first_sequence + k
            ref = t.get("observations") if isinstance(t, dict) else None
            if not isinstance(ref, Continues) or sequence <= mark:  # (duplicates are dropped)
                continue
            episode, step = int(t["episode_id"]), int(t["step"])
            found = self.online.continued_observation(batch.actor_id, ref.sequence, episode, step)
            if found is None:
                problem = (f"transition {sequence}: observations refer to transition "
                           f"{ref.sequence} (episode {episode}, step {step - 1}), a step this "
                           f"buffer does not hold")
                out[k] = {INVALID: problem}
            else:
                out[k] = {**t, "observations": found}
        return out

    def close(self) -> None:
        self.online.close()
        self.demo.close()
        if self.prior is not None:
            self.prior.close()


def with_base_actions(folder: Path, spec, base, episodes: dict) -> tuple[dict, list[str]]:
    """`episodes` (the files of `folder` that load with `spec`) and the files recorded without the
    base action, annotated by `base`; the problems of files neither spec loads."""
    from serl.agents.base_policy import annotate, spec_without_base

    bare, problems = load_demos(folder, spec_without_base(spec))
    episodes = {**episodes, **annotate({n: b for n, b in bare.items() if n not in episodes}, base)}
    return episodes, [p for p in problems if p.split(".npz:")[0] not in episodes]
