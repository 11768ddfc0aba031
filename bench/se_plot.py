"""The sample-efficiency plot: evaluation success against env steps and minutes, and the
intervention rate, one line per seed (`bench/sample_efficiency.py` draws it from the merged
record)."""

from __future__ import annotations

from pathlib import Path


def plot(results: list[dict], path: Path, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4), dpi=100)
    for r in results:
        steps, _, minutes, success = (
            zip(*r["evals"], strict=True) if r["evals"] else ((), (), (), ())
        )
        axes[0].plot(steps, success, "o-", ms=3, label=f"seed {r['seed']}")
        axes[1].plot(minutes, success, "o-", ms=3, label=f"seed {r['seed']}")
        curve = r.get("intervention_curve") or []
        axes[2].plot([c[0] for c in curve], [c[1] for c in curve], label=f"seed {r['seed']}")
    labels = [
        ("env steps", "evaluation success (no interventions)"),
        ("minutes (2-process run, start-up included)", "evaluation success (no interventions)"),
        ("env steps", "intervention rate (last 20 training episodes)"),
    ]
    for ax, (xlabel, ylabel) in zip(axes, labels, strict=True):
        if ylabel.startswith("evaluation"):
            ax.axhline(target, color="gray", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
