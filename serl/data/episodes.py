"""Which slot each transition's observations go to, so that every camera frame is stored once.

Transition k of an episode usually observes exactly what transition k-1 stored as its next
observation; then it points at that slot instead of storing a copy. The rule is checked, never
assumed: by identity when the observation's values are the very (read-only) objects transition k-1
was given as its next observation (the transport rebuilds pairs that way), else byte for byte (after
a restart, or from a caller that copies), so a reset, a gap or a resent episode can only cost a new
slot, never return a wrong observation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

EpisodeKey = tuple[int, int]  # (actor index, episode id)
Observation = Mapping[str, Any]


class Tail(NamedTuple):
    """An episode's last stored transition."""

    step: int
    slot: int  # the slot of its next observations
    sequence: int  # its actor's sequence number
    # the very read-only objects stored in `slot`, when this process stored or read them (what
    # links the next step by identity); None when unknown
    next_obs: Observation | None = None


@dataclass
class SlotPlan:
    """Slots for one batch: per-row links, which rows' observations need a new slot, episode map
    updates."""

    obs_slot: np.ndarray
    next_slot: np.ndarray
    new_obs_rows: np.ndarray  # rows whose observations get a new slot (the others reuse a slot)
    # None: episode ended
    tails: dict[EpisodeKey, Tail | None] = field(default_factory=dict)


class EpisodeMap:
    """For every running episode: its last stored step and the slot of that step's
    next observation."""

    def __init__(self) -> None:
        self.tails: dict[EpisodeKey, Tail] = {}

    @classmethod
    def rebuild(cls, rows: np.ndarray) -> EpisodeMap:
        """From committed rows in append order (on open, so reuse continues across restarts)."""
        episodes = cls()
        if len(rows) == 0:
            return episodes
        keys = np.stack([rows["actor"].astype(np.int64), rows["episode_id"]], axis=1)[::-1]
        # first in reversed order = last occurrence
        _, last = np.unique(keys, axis=0, return_index=True)
        for row in rows[::-1][last]:
            if not row["dones"]:
                episodes.tails[(int(row["actor"]), int(row["episode_id"]))] = Tail(
                    int(row["step"]), int(row["next_slot"]), int(row["sequence"]))
        return episodes

    def plan(self, actor: int, episode_ids: np.ndarray, steps: np.ndarray, sequences: np.ndarray,
             dones: np.ndarray, obs_bytes: Callable[[int], bytes],
             next_bytes: Callable[[int], bytes], first_new_slot: int,
             read_slot: Callable[[int], bytes | None],
             objects: Sequence[tuple[Observation, Observation]] | None = None) -> SlotPlan:
        """Assign slots to a batch of one actor's transitions, in order.

        `obs_bytes(i)`/`next_bytes(i)` are row i's observations as slot-record bytes (read only when
        identity cannot decide); `read_slot(slot)` returns a committed slot's bytes, or None when it
        is no longer stored; `objects[i]`, when given, is row i's (observations, next_observations)
        as the caller passed them. New slots are numbered from `first_new_slot` in row order, each
        row's observations (when new) before its next observations.
        """
        n = len(episode_ids)
        plan = SlotPlan(np.empty(n, np.int64), np.empty(n, np.int64), np.empty(0, np.int64))
        new_obs_rows: list[int] = []
        # new slot -> row whose next observation it holds (not yet on disk)
        pending: dict[int, int] = {}
        slot = first_new_slot
        for i in range(n):
            key = (actor, int(episode_ids[i]))
            tail = plan.tails[key] if key in plan.tails else self.tails.get(key)
            reuse = False
            if tail is not None and tail.step == int(steps[i]) - 1:
                known = objects[pending[tail.slot]][1] if (
                    objects is not None and tail.slot in pending) else tail.next_obs
                reuse = objects is not None and known is not None and _same(objects[i][0], known)
                if not reuse:  # identity unknown or different objects: compare the bytes
                    stored = next_bytes(pending[tail.slot]) if tail.slot in pending else read_slot(
                        tail.slot)
                    reuse = stored is not None and stored == obs_bytes(i)
            if reuse:
                plan.obs_slot[i] = tail.slot
            else:
                plan.obs_slot[i] = slot
                new_obs_rows.append(i)
                slot += 1
            plan.next_slot[i] = slot  # next observations always get a new slot
            pending[slot] = i
            slot += 1
            nxt = objects[i][1] if objects is not None and frozen(objects[i][1]) else None
            plan.tails[key] = None if dones[i] else Tail(int(steps[i]), int(plan.next_slot[i]),
                                                         int(sequences[i]), nxt)
        plan.new_obs_rows = np.asarray(new_obs_rows, np.int64)
        return plan

    def apply(self, plan: SlotPlan) -> None:
        """Record a committed plan's episode updates."""
        for key, tail in plan.tails.items():
            if tail is None:
                self.tails.pop(key, None)
            else:
                self.tails[key] = tail

    def forget_below(self, slot: int) -> None:
        """Drop episodes whose last slot is no longer stored (they can only get new slots now)."""
        self.tails = {k: t for k, t in self.tails.items() if t.slot >= slot}


def _same(obs: Observation, known: Observation) -> bool:
    """Every value of `obs` is the very object of `known` (so its content, read-only, is too)."""
    return len(obs) == len(known) and all(obs.get(k) is v for k, v in known.items())


def frozen(obs: Observation) -> bool:
    """Read-only arrays only: safe to recognise by identity in a later batch."""
    return all(isinstance(v, np.ndarray) and not v.flags.writeable for v in obs.values())
