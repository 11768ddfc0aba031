"""Weights & Biases beside TensorBoard, in the learner: the one process that hears every scalar
(its own and each actor's episode and evaluation reports) and whose run folder holds the resolved
config (`config.json`) and the evaluation videos (`videos/eval_<env steps>.mp4`, written by an actor
sharing the folder before it reports that evaluation; a remote actor's videos stay on its machine).

One W&B run per learner process. Learner scalars are charted against `update`, actor ones against
`env_steps` (W&B's own step must only grow, and the two counters are different axes, as in
TensorBoard). wandb is imported only here, when the switch is on (`WandbConfig`). Monitoring is a
convenience: a failed log is reported once and logging stops; training goes on."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from serl.learner.wandb_config import WandbConfig, WandbUnavailable, import_wandb

log = logging.getLogger("serl.learner")

# the x axes: the learner's update counter and the actors' env steps
UPDATE, ENV_STEPS = "update", "env_steps"
VIDEO_KEY = "eval/video"


def resolved_config(run_dir: Path, learner: object) -> dict:
    """The run's resolved config as its `config.json` records it (task, config class and every
    field); the learner's own config alone when the folder has none (a learner built by hand)."""
    try:
        record = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return {"learner": json.loads(json.dumps(asdict(learner), default=str))}
    if isinstance(record.get("config"), dict):
        return {"task": record.get("task"), "config_class": record.get("config_class"),
                **record["config"]}
    return record


def video_step(path: Path) -> int | None:
    """The env steps an evaluation video was taken at, from its name (`eval_00001234.mp4`)."""
    stem = path.stem
    digits = stem.removeprefix("eval_")
    return int(digits) if stem.startswith("eval_") and digits.isdigit() else None


class WandbSink:
    """A W&B run for the learner in `run_dir`; `WandbUnavailable` when wandb is missing or the run
    cannot start (not logged in, in online mode)."""

    def __init__(self, cfg: WandbConfig, run_dir: Path, learner: object):
        wandb = import_wandb()
        self.run_dir = Path(run_dir)
        self.videos = self.run_dir / "videos"
        # videos of an earlier incarnation belong to its own W&B run
        self.seen = set(self.videos.glob("eval_*.mp4"))
        self._video = wandb.Video
        self._axes: dict[str, str] = {}
        try:
            with warnings.catch_warnings():
                # wandb starts its service with fork+exec, which JAX's fork hook warns of as a
                # deadlock risk: the child runs no Python, it only execs
                warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
                self.run = wandb.init(
                    project=cfg.project, entity=cfg.entity, mode=cfg.mode,
                    dir=str(Path(cfg.dir) if cfg.dir else self.run_dir),
                    name=cfg.name or self.run_dir.name, tags=list(cfg.tags),
                    config=resolved_config(self.run_dir, learner),
                    # the learner's own stdout and stderr stay untouched
                    settings=wandb.Settings(console="off"))
        except Exception as err:
            raise WandbUnavailable(
                f"the Weights & Biases run did not start ({type(err).__name__}: {err}); run "
                "`wandb login`, or log without a network (--learner.wandb.mode offline), or turn "
                "it off (--learner.wandb.no-enabled)") from err
        for axis in (UPDATE, ENV_STEPS):
            self.run.define_metric(axis)
        self._define("eval/eval_success", ENV_STEPS, summary="max")

    def _define(self, key: str, axis: str, summary: str | None = None) -> None:
        if self._axes.get(key) != axis:
            self._axes[key] = axis
            self.run.define_metric(key, step_metric=axis, summary=summary)

    def log(self, axis: str, step: int, scalars: Mapping[str, float]) -> None:
        """Scalars (TensorBoard's tags and values) at `step` of `axis` (UPDATE or ENV_STEPS)."""
        if self.run is None or not scalars:
            return
        try:
            for key in scalars:
                self._define(key, axis)
            self.run.log({**scalars, axis: int(step)})
        except Exception as err:
            self._failed(err)

    def log_new_videos(self) -> list[Path]:
        """Log the evaluation videos that appeared in the run's `videos/` since the last call."""
        if self.run is None:
            return []
        new = sorted(p for p in self.videos.glob("eval_*.mp4") if p not in self.seen)
        try:
            for path in new:
                self.seen.add(path)
                if (step := video_step(path)) is not None:
                    self._define(VIDEO_KEY, ENV_STEPS)
                    self.run.log({VIDEO_KEY: self._video(str(path), format="mp4"),
                                  ENV_STEPS: step})
        except Exception as err:
            self._failed(err)
        return new

    def _failed(self, err: Exception) -> None:
        log.error("Weights & Biases logging failed, and stops for this process (TensorBoard goes "
                  "on): %s: %s", type(err).__name__, err)
        self.close()

    def close(self) -> None:
        """Finish the W&B run (an offline run's files are complete after this)."""
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish()
            except Exception as err:
                log.error("the Weights & Biases run did not finish cleanly: %s", err)
