"""The learner's status for its actors' dashboards (`LearnerStatus` over a `StatusPublisher`):
counters, rates, buffer sizes and the run's curve, published at most once every `interval_s`."""

from __future__ import annotations

import time

from serl.transport.interfaces import LearnerStatus, StatusPublisher


def status_of(learner, updates_per_s: float, published) -> LearnerStatus:
    """What `learner` (a `serl.learner.loop.Learner`) reports now. `published`: the newest
    published `WeightsVersion`, or None."""
    c, history = learner.counters, learner.monitor.history
    status = {
        "updates": c.updates, "updates_per_s": round(float(updates_per_s), 3),
        "incarnation": c.incarnation, "buffer_online": learner.online.size,
        "buffer_demo": learner.demo.size, "min_online": learner.cfg.min_online,
        "ready": learner.ready(), "invalid_transitions": learner.invalid_transitions,
        "disk_errors": learner.disk_errors, "episodes": len(history.train),
        "weights_step": -1 if published is None else published.step,
    }
    evals = tuple((float(r.get("env_steps", 0)), float(r["eval_success"]))
                  for r in history.evals[-64:])
    train = tuple((float(r.get("env_steps", 0)), float(r.get("success", 0.0)),
                   float(r.get("intervention_rate", 0.0))) for r in history.train[-256:])
    return LearnerStatus(status, evals, train)


class StatusOut:
    """Publishes `status_of(...)` through `publisher` (None: nowhere), every `interval_s`."""

    def __init__(self, publisher: StatusPublisher | None, interval_s: float = 1.0):
        self.publisher, self.interval_s = publisher, interval_s
        self._next = 0.0

    def maybe_publish(self, learner, updates_per_s: float, published) -> bool:
        """Publish if due; whether it did."""
        now = time.monotonic()
        if self.publisher is None or now < self._next:
            return False
        self._next = now + self.interval_s
        self.publisher.publish_status(status_of(learner, updates_per_s, published))
        return True
