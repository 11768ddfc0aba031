"""RLPD batches: half online, half demo (optionally a fixed share from a third, prior buffer first
taken out of the batch); and a prefetcher that samples the next batch while the current one
trains."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from serl.data.schema import Batch, concatenate


class Sampler(Protocol):
    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch: ...


def prior_count(batch_size: int, prior_fraction: float) -> int:
    """Transitions of a `batch_size` batch drawn from the prior buffer: `prior_fraction` of it,
    rounded, and never the whole batch (the fraction is below 1)."""
    return max(0, min(batch_size - 1, round(prior_fraction * batch_size)))


def sample_mixed(online: Sampler, demo: Sampler | None, batch_size: int,
                 rng: np.random.Generator, prior: Sampler | None = None,
                 prior_fraction: float = 0.0) -> Batch:
    """`batch_size` transitions, concatenated in this order: ceil(r/2) from `online`, the other
    r - ceil(r/2) from `demo` (all r from `online` when `demo` is None), then `prior_count(b,
    prior_fraction)` from `prior`, where r is what the prior share leaves. Without `prior` (or
    with a share that rounds to 0) it draws exactly what it drew before the prior buffer existed,
    with the same rng calls."""
    n_prior = 0 if prior is None else prior_count(batch_size, prior_fraction)
    rest = batch_size - n_prior
    n_online = rest if demo is None else (rest + 1) // 2
    parts = [online.sample(n_online, rng)]
    if demo is not None:
        parts.append(demo.sample(rest - n_online, rng))
    if n_prior:
        parts.append(prior.sample(n_prior, rng))
    return concatenate(parts)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class PrefetchIterator:
    """Iterates `device_put(sample_fn())` computed `depth` batches ahead on a background thread.

    An exception in the thread is re-raised by `next`; `close` (or leaving a `with` block) stops the
    thread. `device_put` defaults to `jax.device_put`, imported only when needed so `serl.data` does
    not import JAX. `sample_fn` runs on the background thread: give it its own rng.
"""

    def __init__(self, sample_fn: Callable[[], Any], device_put: Callable[[Any], Any] | None = None,
                 depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if device_put is None:
            import jax

            device_put = jax.device_put
        self._sample_fn, self._device_put = sample_fn, device_put
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._put(self._device_put(self._sample_fn()))
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put(_Failure(error))

    def _put(self, item: Any) -> None:
        # wake up now and then so `close` is never stuck behind a full queue
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def __iter__(self) -> PrefetchIterator:
        return self

    def __next__(self) -> Any:
        while True:
            if self._stop.is_set():
                raise StopIteration
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background thread and drop prefetched batches."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> PrefetchIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
