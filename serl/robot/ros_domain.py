"""Private ROS 2 domain ids for launched simulated rigs: never the same twice in one process (a
reused id would let a test's ROS nodes, or a rig still shutting down, cross topics with the next
rig) and independent of the global `random` state, which tests and libraries seed."""

from __future__ import annotations

import random

_used: set[int] = set()
_rng = random.SystemRandom()


def private_domain_id(low: int = 1, high: int = 101) -> int:
    free = [d for d in range(low, high + 1) if d not in _used] or list(range(low, high + 1))
    domain = _rng.choice(free)
    _used.add(domain)
    return domain
