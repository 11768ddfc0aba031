"""Where the learner's wall time goes: each part of the loop is timed around its call (the update
until its result is ready, waiting for a sampled batch, intake, waiting for data, the actors'
reports, publishing, bookkeeping), so the share of wall time spent outside `update` is a measured
figure in the progress line, TensorBoard and `bench/learner.py`, with what dominates it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# the loop's parts; what no part covers (the loop's own checks) is "other"; "data_wait" is intake
# while no update may run (too little online data, or `max_updates_per_step` holding the learner)
PHASES = ("update", "sampling", "intake", "data_wait", "actors", "publishing", "bookkeeping")
# timed inside a phase, reported beside it (not added again): the frozen trunk's pass over the new
# frames at insertion (the feature cache), inside intake
NESTED = {"trunk_features": "intake"}


@dataclass(frozen=True)
class TimeShares:
    """Fractions of the wall time of a window of training."""

    # seconds of wall time the window covers
    wall_s: float
    # updates completed in the window
    updates: int
    # phase -> fraction of wall_s, "other" included; they sum to 1
    shares: dict[str, float]
    # NESTED part -> fraction of wall_s (already inside its phase's share)
    nested: dict[str, float]

    @property
    def outside_update(self) -> float:
        """The fraction of wall time not spent in `update`."""
        return 1.0 - self.shares.get("update", 0.0)

    def summary(self, least: float = 0.005) -> str:
        """`outside update 12% (intake 6%, sampling 4%, ...)`, largest first, parts under `least`
        left out."""
        parts = sorted(((v, k) for k, v in self.shares.items() if k != "update" and v >= least),
                       reverse=True)
        inner = {NESTED[k]: f" [{k.replace('_', ' ')} {100 * v:.0f}%]"
                 for k, v in self.nested.items() if v >= least}
        detail = ", ".join(f"{k} {100 * v:.0f}%{inner.get(k, '')}" for v, k in parts)
        return f"outside update {100 * self.outside_update:.0f}%" + (f" ({detail})" if detail
                                                                       else "")

    def scalars(self, prefix: str = "learner/time_") -> dict[str, float]:
        """TensorBoard scalars: the outside-update fraction and each part's."""
        return {f"{prefix}outside_update": self.outside_update,
                **{f"{prefix}{k}": v for k, v in {**self.shares, **self.nested}.items()}}


class LoopClock:
    """Accumulates seconds per phase from `start()`; each reader (`window(name)`) gets the shares
    since its previous call. The wall time ends at the last phase's end, so a reader after the loop
    has stopped sees only the loop."""

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self.now = now
        self.totals = dict.fromkeys((*PHASES, *NESTED), 0.0)
        self.updates = 0
        self.started: float | None = None
        self._last = 0.0
        self._readers: dict[str, tuple[float, dict[str, float], int]] = {}

    def start(self) -> None:
        """Begin (or begin again) counting: everything before is forgotten (a compile, say)."""
        self.totals = dict.fromkeys((*PHASES, *NESTED), 0.0)
        self.updates = 0
        self.started = self._last = self.now()
        self._readers.clear()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the body as `name`, a phase or a NESTED part (counted only once started)."""
        begin = self.now()
        try:
            yield
        finally:
            if self.started is not None:
                end = self.now()
                self.totals[name] += end - begin
                self.updates += name == "update"
                if name in PHASES:
                    self._last = end

    def window(self, reader: str) -> TimeShares | None:
        """The shares since `reader`'s previous call (or since `start`); None before `start` or
        when no time has passed."""
        if self.started is None:
            return None
        since, totals, updates = self._readers.get(
            reader, (self.started, dict.fromkeys(self.totals, 0.0), 0))
        wall = self._last - since
        self._readers[reader] = (self._last, dict(self.totals), self.updates)
        if wall <= 0:
            return None
        share = {k: (self.totals[k] - totals[k]) / wall for k in self.totals}
        shares = {k: share[k] for k in PHASES}
        shares["other"] = max(0.0, 1.0 - sum(shares.values()))
        return TimeShares(wall, self.updates - updates, shares, {k: share[k] for k in NESTED})
