"""The stall watchdog of the driver and server loops: silent for longer than its threshold, it
reports once with every thread's stack; beating again, it reports the resume."""

from __future__ import annotations

import time

import pytest

from robot_servers.stall_watch import StallWatch


@pytest.mark.timeout(20)
def test_a_silent_loop_is_reported_once_with_stacks_then_its_resume(tmp_path):
    path = tmp_path / "watch.log"
    with open(path, "w") as stream:
        watch = StallWatch("test loop", threshold_s=0.2, stream=stream).start()
        for _ in range(20):  # beating: nothing to report
            watch.beat()
            time.sleep(0.02)
        assert path.read_text() == ""
        time.sleep(0.8)  # silent for four thresholds: one report
        watch.beat()
        time.sleep(0.15)
        watch.stop()
    text = path.read_text()
    assert text.count("test loop silent for") == 1 and text.count("test loop resumed") == 1
    # the stalled thread's stack
    assert "in test_a_silent_loop_is_reported_once_with_stacks_then_its_resume" in text
