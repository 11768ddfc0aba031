"""The libfranka adapter's gripper: one worker thread runs every command of franky's Gripper and
reads its state meanwhile. One at a time, because each `*_async` call blocks until the previous
command's reply, and franky-sim (like a busy gripper) answers only the latest command: overlapping
commands, or `stop()` mid-move, hang the caller for good. `stop()` is never called."""

from __future__ import annotations

import threading
from collections.abc import Callable

from serl.robot.libfranka_config import LibfrankaSection


class GripperWorker:
    """Commands (`command`) are queued, latest wins; a repeat of the last one is a no-op (a grasp
    that holds the cube is not restarted every step). `gripper()` gives the current franky Gripper
    or None (not connected); after a failure the worker waits for the next one (a rebuilt link)."""

    def __init__(self, section: LibfrankaSection, gripper: Callable[[], object | None]):
        self.section, self._gripper = section, gripper
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._width: float | None = None
        self._grasped, self._result = False, None
        self._want: str | None = None  # the next command: open | close | homing
        self._busy = False
        self._done: str | None = None  # the last command run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="libfranka-gripper", daemon=True)
        self._thread.start()

    def command(self, want: str) -> None:
        with self._lock:
            self._want = want
            self._wake.notify()

    def reconnected(self) -> None:
        """A new link: forget the old gripper's state; the next command runs whatever it is."""
        with self._lock:
            self._done = None
            self._wake.notify()

    def width(self) -> tuple[float | None, bool]:
        """(finger width m or None before the first reading; a command queued or running)."""
        with self._lock:
            return self._width, self._busy or self._want is not None

    def info(self) -> dict:
        with self._lock:
            return {"gripper_up": self._width is not None, "gripper_width": self._width,
                    "grasped": self._grasped, "gripper_result": self._result}

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._wake.notify_all()
        self._thread.join(timeout=3)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._wake.wait(0.05)
                want = self._want
                if want is not None and want == self._done and want != "homing":
                    want = self._want = None
                if want is not None:
                    self._want, self._busy = None, True
            gripper = self._gripper()
            try:
                if gripper is None:
                    continue
                if want is None:
                    self._read(gripper)
                    continue
                ok = self._run(gripper, want)
                with self._lock:
                    self._done, self._result = want, f"{want}: {ok}"
            except Exception as err:  # noqa: BLE001 -- a lost link: recovery rebuilds the gripper
                with self._lock:
                    self._width, self._done = None, None
                    self._result = f"{want or 'read'}: {type(err).__name__}: {err}"
                self._stop.wait(0.5)
            finally:
                with self._lock:
                    self._busy = False

    def _run(self, gripper, want: str) -> bool:
        s = self.section
        if want == "homing":
            future = gripper.homing_async()
        elif want == "close":  # grasp whatever is there: any final width up to epsilon_outer
            future = gripper.grasp_async(0.0, s.gripper_speed, s.grasp_force, 0.005,
                                         s.grasp_epsilon_outer)
        else:
            future = gripper.move_async(gripper.max_width, s.gripper_speed)
        while not future.wait(0.05):  # progress while the command runs
            self._read(gripper)
            if self._stop.is_set():
                return False
        ok = bool(future.get())
        self._read(gripper)
        return ok

    def _read(self, gripper) -> None:
        state = gripper.state
        with self._lock:
            self._width, self._grasped = float(state.width), bool(state.is_grasped)
