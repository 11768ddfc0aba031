"""A self-pipe that lets any thread wake an I/O thread blocked in `zmq.Poller.poll` (which can watch
plain fds)."""

from __future__ import annotations

import os


class WakePipe:
    """`wake()` never blocks (a full pipe is already a pending wake-up); the I/O thread polls `fd`
    and `drain`s."""

    def __init__(self):
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)

    def wake(self) -> None:
        try:
            os.write(self._write_fd, b"x")
        except BlockingIOError:
            pass

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._write_fd)
