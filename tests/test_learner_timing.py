"""The learner loop's clock: shares of wall time per part, per reader, from its start on."""

import pytest

from serl.learner.timing import LoopClock


class FakeTime:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def spend(clock: LoopClock, now: FakeTime, phase: str, seconds: float) -> None:
    with clock.phase(phase):
        now.t += seconds


def test_shares_add_up_per_reader_and_nothing_before_the_start_counts():
    now = FakeTime()
    clock = LoopClock(now)
    spend(clock, now, "update", 30.0)  # the first update compiles: not counted
    assert clock.window("line") is None
    clock.start()
    for _ in range(4):
        with clock.phase("intake"):
            spend(clock, now, "trunk_features", 0.05)
            now.t += 0.05
        spend(clock, now, "sampling", 0.05)
        spend(clock, now, "update", 0.7)
        now.t += 0.1  # the loop's own checks
    shares = clock.window("line")
    assert shares.wall_s == pytest.approx(3.7) and shares.updates == 4  # ends at the last phase
    assert shares.shares["update"] == pytest.approx(2.8 / 3.7)
    assert shares.shares["intake"] == pytest.approx(0.4 / 3.7)
    assert shares.nested["trunk_features"] == pytest.approx(0.2 / 3.7)
    assert sum(shares.shares.values()) == pytest.approx(1.0)
    assert shares.outside_update == pytest.approx(0.9 / 3.7)
    assert shares.summary() == ("outside update 24% (intake 11% [trunk features 5%], other 8%, "
                                "sampling 5%)")
    assert shares.scalars()["learner/time_outside_update"] == pytest.approx(0.9 / 3.7)
    spend(clock, now, "publishing", 1.0)
    # since its last read (and the 0.1 s of loop checks before it)
    assert clock.window("line").shares["publishing"] == pytest.approx(1.0 / 1.1)
    assert clock.window("scalars").updates == 4  # another reader: from the start
