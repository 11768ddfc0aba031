"""Log lines about what peers send, at a bounded rate: a peer that floods refused or malformed
messages must not flood the log (nor slow the I/O thread formatting lines nobody reads).

At most one line per key (e.g. ("bad", peer)) every `interval` seconds, and at most `max_lines`
lines in all per interval; a line that gets through says how many like it were held back since the
previous one. Keys are bounded too (`max_keys`, least recently logged forgotten first), so a sender
inventing new peer names cannot grow memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class RateLimitedLog:
    """`log(level, key, message, *args)`: logs like `logger.log` unless this key (or the logger as a
    whole) already had its share of this interval; returns whether it logged."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0, max_lines: int = 20,
                 max_keys: int = 1024, clock: Callable[[], float] = time.monotonic):
        self.logger, self.interval = logger, interval
        self.max_lines, self.max_keys, self._clock = max_lines, max_keys, clock
        # key -> [time of its last line, lines held back since]
        self._keys: OrderedDict[Hashable, list] = OrderedDict()
        self._window_start, self._window_lines = -float("inf"), 0
        self.suppressed = 0  # lines held back so far, all keys together
        self._lock = threading.Lock()  # the learner's authenticator thread logs too

    def log(self, level: int, key: Hashable, message: str, *args: object) -> bool:
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self.interval:
                self._window_start, self._window_lines = now, 0
            entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = [-float("inf"), 0]
                while len(self._keys) > self.max_keys:
                    self._keys.popitem(last=False)
            if now - entry[0] < self.interval or self._window_lines >= self.max_lines:
                entry[1] += 1
                self.suppressed += 1
                return False
            held, entry[0], entry[1] = entry[1], now, 0
            self._keys.move_to_end(key)
            self._window_lines += 1
        if held:
            message += " (and %d more like this, not logged, since the previous line)"
            args = (*args, held)
        self.logger.log(level, message, *args)
        return True
