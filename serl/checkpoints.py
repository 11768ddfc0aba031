"""Learner checkpoints with orbax: the agent's whole train state, the counters and the per-actor
watermarks.

Orbax writes each checkpoint to a temporary folder and renames it when complete, so a crash
mid-write leaves the previous checkpoint loadable. Saves are synchronous here: a checkpoint that
`save` returned from is on disk. A save that fails to write (disk full) raises
`CheckpointWriteError` and removes its partial folder.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from serl.durable import fsync_directory, fsync_file


@dataclass
class LearnerCounters:
    updates: int = 0  # learner updates done (the step of the weights version)
    incarnation: int = 0  # bumped on every restore, so actors never take new weights for old ones
    skipped_updates: int = 0  # updates dropped by the non-finite guard
    # per-actor last durable sequence (a copy)
    watermarks: dict[str, int] = field(default_factory=dict)


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (disk full, quota, I/O error); the previous checkpoint is
    untouched."""


def _os_error_code(err: BaseException) -> int | None:
    """The errno of a failed write: OSError's own, or the one tensorstore puts in its message."""
    if isinstance(err, OSError):
        return err.errno
    found = re.search(r"os_error_code='?(\d+)", str(err))
    return int(found.group(1)) if found else None


def fsync_tree(folder: Path) -> None:
    """Make a written folder durable: fsync of every file and folder in it, and of its own entry
    (orbax renames a finished checkpoint into place but does not fsync it)."""
    if not folder.exists():
        return
    for root, _, files in os.walk(folder):
        for name in files:
            fsync_file(Path(root) / name)
        fsync_directory(Path(root))
    fsync_directory(folder.parent)


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 3):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=False,
            # partial folders of a crashed save
            cleanup_tmp_directories=True,
        )
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, agent, counters: LearnerCounters, trunk_weights: str | None = None) -> None:
        """Write a checkpoint for `counters.updates`; one for that step already on disk holds the
        same agent. `trunk_weights`: the fingerprint of the frozen trunk whose features the agent
        was trained on (`serl.networks.trunk.trunk_fingerprint`), kept beside it."""
        if counters.updates == self.latest_step():
            return
        items = {"agent": ocp.args.StandardSave(agent),
                 "counters": ocp.args.JsonSave(asdict(counters))}
        if trunk_weights is not None:
            items["trunk"] = ocp.args.JsonSave({"trunk_weights": trunk_weights})
        args = ocp.args.Composite(**items)
        # left by an earlier failed save (its threads may have outlived it)
        self._remove_partial("*")
        absl = logging.getLogger("absl")
        level = absl.level
        # a failed write is raised below once, not logged by each orbax thread
        absl.setLevel(logging.CRITICAL)
        try:
            self._manager.save(counters.updates, args=args, force=True)
            self._manager.wait_until_finished()
            fsync_tree(self.directory / str(counters.updates))
        except Exception as err:
            code = _os_error_code(err)
            if code is None:
                raise
            self._remove_partial(str(counters.updates))  # frees the space it took
            raise CheckpointWriteError(
                code,
                f"checkpoint {counters.updates} not written: {os.strerror(code)} "
                f"({errno.errorcode.get(code, code)}); {str(err)[:300]}",
            ) from err
        finally:
            absl.setLevel(level)

    def _remove_partial(self, step: str) -> None:
        for partial in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
            shutil.rmtree(partial, ignore_errors=True)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, like_agent, step: int | None = None):
        """(agent, counters) of the given or latest checkpoint; `like_agent` gives the structure and
        dtypes."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self._manager.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_agent)
        args = ocp.args.Composite(
            agent=ocp.args.StandardRestore(abstract), counters=ocp.args.JsonRestore()
        )
        restored = self._manager.restore(step, args=args)
        return restored.agent, LearnerCounters(**restored.counters)

    def trunk_weights(self, step: int) -> str | None:
        """The frozen trunk's fingerprint checkpoint `step` was saved with (None: it records none,
        as checkpoints before the fingerprint was kept did not)."""
        if not (self.directory / str(step) / "trunk").exists():
            return None
        restored = self._manager.restore(step, args=ocp.args.Composite(
            trunk=ocp.args.JsonRestore()))
        return restored.trunk["trunk_weights"]

    def check_trunk(self, step: int, expected: str) -> None:
        """Refuse checkpoint `step` when it was trained on another frozen trunk's features than
        `expected` (a ValueError saying what changed); one that records none is taken as is."""
        recorded = self.trunk_weights(step)
        if recorded is not None and recorded != expected:
            raise ValueError(
                f"checkpoint {step} in {self.directory} was trained on the features of another "
                f"frozen trunk (fingerprint {recorded}; this config's trunk is {expected}): the "
                "trunk's weights changed (agent.encoder.pretrained_path, its file, or "
                "agent.encoder.trunk_seed). Use the weights the run was trained with, or start a "
                "new run")

    def close(self) -> None:
        self._manager.close()
