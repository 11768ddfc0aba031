"""A watchdog for the loops a rig depends on: when a loop's heartbeat stops for longer than
`threshold_s`, it logs how long and the stack of every thread (once per stall), so a stalled driver
or server explains itself in its log instead of only showing up as "no robot state" on the other
side."""

from __future__ import annotations

import faulthandler
import sys
import threading
import time


class StallWatch:
    def __init__(self, name: str, threshold_s: float = 0.5, stream=None):
        self.name, self.threshold_s = name, threshold_s
        self._stream = stream or sys.stderr
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"stall-watch-{name}", daemon=True)

    def beat(self) -> None:
        self._beat = time.monotonic()

    def start(self) -> StallWatch:
        self._beat = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _watch(self) -> None:
        reported = False
        while not self._stop.wait(self.threshold_s / 4):
            silent = time.monotonic() - self._beat
            if silent < self.threshold_s:
                if reported:
                    print(
                        f"[stall-watch] {time.strftime('%H:%M:%S')} {self.name} resumed",
                        file=self._stream,
                        flush=True,
                    )
                reported = False
            elif not reported:
                reported = True
                print(
                    f"[stall-watch] {time.strftime('%H:%M:%S')} {self.name} silent for "
                    f"{silent:.2f} s; threads:",
                    file=self._stream,
                    flush=True,
                )
                faulthandler.dump_traceback(file=self._stream, all_threads=True)
