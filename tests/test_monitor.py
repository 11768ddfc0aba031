"""The run monitor: history on disk, curve, progress line, stopping rule."""

import pytest

from serl.monitor import RunMonitor


def reports(n, start=0, success_every=2):
    return [{"env_steps": (start + i + 1) * 30, "success": float(i % success_every == 0),
             "intervention_rate": 0.5 / (i + 1), "length": 30} for i in range(n)]


@pytest.mark.timeout(60)
def test_history_curve_progress_and_target(tmp_path):
    monitor = RunMonitor(tmp_path, target_eval_success=0.8, target_window=2)
    monitor.observe(reports(10))
    assert not (tmp_path / "curve.png").exists()  # drawn at evaluations
    monitor.observe([{"eval_success": 0.4, "env_steps": 300, "policy_step": 50}])
    assert (tmp_path / "curve.png").stat().st_size > 5000
    assert monitor.rates() == (0.5, pytest.approx(sum(0.5 / (i + 1) for i in range(10)) / 10))
    line = monitor.progress_line(12.5, "0:50")
    assert "steps 300" in line and "eval 40%" in line and "train 50%" in line
    assert "12.5 updates/s" in line
    assert not monitor.target_reached()
    monitor.observe([{"eval_success": 1.0, "env_steps": 330, "policy_step": 60}])
    assert not monitor.target_reached()  # the mean of the last two is 0.7
    monitor.observe([{"eval_success": 0.8, "env_steps": 360, "policy_step": 70}])
    assert monitor.target_reached()
    # A restarted learner reads the history back; a torn last line (crash mid-write) is skipped.
    with (tmp_path / "history.jsonl").open("a") as f:
        f.write('{"eval_success": 1.0, "env_')
    again = RunMonitor(tmp_path, target_eval_success=0.95, target_window=2)
    assert len(again.history.train) == 10
    assert [e["eval_success"] for e in again.history.evals] == [0.4, 1.0, 0.8]
    assert again.env_steps == 360 and not again.target_reached()
