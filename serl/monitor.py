"""What a person sees while a robot learns: the episode history the actors report, a live progress
line, `curve.png` (evaluation success without interventions, training success and intervention rate
against env steps) and the stopping rule on evaluation success. Lives in the learner, which hears
every actor."""

from __future__ import annotations

import io
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from serl.durable import write_bytes, write_text
from serl.run_progress import append_lines

WINDOW = 20  # training episodes the rolling success and intervention rates cover


@dataclass
class History:
    # per training episode: env_steps, success, intervention_rate
    train: list[dict] = field(default_factory=list)
    # per evaluation: env_steps, eval_success, policy_step
    evals: list[dict] = field(default_factory=list)


class RunMonitor:
    def __init__(
        self,
        run_dir: Path,
        target_eval_success: float | None = None,
        progress_every_s: float = 10.0,
        target_window: int = 3,
    ):
        self.run_dir = Path(run_dir)
        self.target, self.target_window = target_eval_success, target_window
        self.progress_every_s = progress_every_s
        self.history = self._load()
        self.recent = deque(self.history.train[-WINDOW:], maxlen=WINDOW)
        self._last_print = 0.0
        self._rate = (time.monotonic(), self.env_steps)

    @property
    def path(self) -> Path:
        return self.run_dir / "history.jsonl"

    def _load(self) -> History:
        history = History()
        if self.path.exists():
            text = self.path.read_text()
            # a torn last line after a crash: cut it before appending
            if text and not text.endswith("\n"):
                text = text[: text.rfind("\n") + 1]
                write_text(self.path, text)
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a crash
                (history.evals if "eval_success" in record else history.train).append(record)
        return history

    @property
    def env_steps(self) -> int:
        return max(
            [r.get("env_steps", 0) for r in self.history.train[-1:] + self.history.evals[-1:]]
            or [0]
        )

    @property
    def last_eval(self) -> float | None:
        return self.history.evals[-1]["eval_success"] if self.history.evals else None

    def target_reached(self) -> bool:
        """Whether the mean of the last `target_window` evaluations reaches the target (one
        evaluation of a few episodes is too noisy to stop a run on)."""
        recent = [r["eval_success"] for r in self.history.evals[-self.target_window :]]
        return (
            self.target is not None
            and len(recent) == self.target_window
            and sum(recent) / len(recent) >= self.target
        )

    def observe(self, reports: list[dict]) -> None:
        """Take actor reports (training episodes and evaluations); persist them; redraw the curve on
        evaluations."""
        if not reports:
            return
        for r in reports:
            # when the learner heard it: minutes-to-target come from this
            r.setdefault("time", time.time())
            if "eval_success" in r:
                self.history.evals.append(r)
            else:
                self.history.train.append(r)
                self.recent.append(r)
        append_lines(self.path, [json.dumps(r) for r in reports])
        if any("eval_success" in r for r in reports):
            self.draw()

    def rates(self) -> tuple[float | None, float | None]:
        """(training success, intervention rate) over the last WINDOW training episodes."""
        if not self.recent:
            return None, None
        n = len(self.recent)
        return (
            sum(r["success"] for r in self.recent) / n,
            sum(r["intervention_rate"] for r in self.recent) / n,
        )

    def progress_line(self, updates_per_s: float, version: str) -> str:
        now, steps = time.monotonic(), self.env_steps
        hz = (steps - self._rate[1]) / max(1e-9, now - self._rate[0])
        self._rate = (now, steps)
        success, interventions = self.rates()
        fmt = lambda x: "-" if x is None else f"{100 * x:.0f}%"  # noqa: E731
        return (
            f"steps {steps} | episodes {len(self.history.train)} | eval {fmt(self.last_eval)} | "
            f"train {fmt(success)} | interventions {fmt(interventions)} | "
            f"{updates_per_s:.1f} updates/s | weights {version} | actor {hz:.1f} steps/s"
        )

    def maybe_print(self, updates_per_s: float, version: str) -> None:
        if time.monotonic() - self._last_print >= self.progress_every_s:
            self._last_print = time.monotonic()
            print(self.progress_line(updates_per_s, version), flush=True)

    def draw(self) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        if self.history.evals:
            ax.plot(
                [r["env_steps"] for r in self.history.evals],
                [r["eval_success"] for r in self.history.evals],
                "o-",
                label="evaluation success (no interventions)",
            )
        train = self.history.train
        if train:
            xs = [r["env_steps"] for r in train]
            roll = (
                lambda key: [
                    sum(r[key] for r in train[max(0, i - WINDOW + 1) : i + 1])  # noqa: E731
                    / len(train[max(0, i - WINDOW + 1) : i + 1])
                    for i in range(len(train))
                ]
            )
            ax.plot(xs, roll("success"), label=f"training success (last {WINDOW})")
            ax.plot(xs, roll("intervention_rate"), label=f"intervention rate (last {WINDOW})")
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        image = io.BytesIO()
        fig.savefig(image, format="png")
        plt.close(fig)
        return write_bytes(self.run_dir / "curve.png", image.getvalue())
