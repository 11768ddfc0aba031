"""`serl record-labels TASK`: record frames (the configured cameras + the state) with a success
label per step, saved atomically as a label file in the labels folder (default `labels/<task>/`). In
simulation the label is the simulator's success flag, on scripted-operator episodes that include
near misses; on a real rig it is the operator holding "mark_success", which then ends nothing: an
episode ends on abort, mark_failure or the time limit, and a button still held after a reset counts
only once released and pressed again. Ctrl+C saves what was recorded so far.

`serl record-labels TASK --from-run RUN`: review the frames a classifier called success during the
run (`runs/RUN/classifier_positives/`); the ones marked false are saved as hard negatives (the
confirmed ones as successes) in a label file that joins the next `serl train-reward`. `--mark sim`
needs the simulator's success flag on every frame and refuses a run from a real rig, which has
none."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from serl.commands.config_args import parse_task_config


def sim_env(config, seed: int, classifier=None):
    """The policy env for sim labels: no termination at success (success frames go on), the
    near-miss operator; with `classifier`, its reward wrapper too (the classifier alone ends
    episodes)."""
    from serl.devices.scripted import ScriptedOperator
    from serl.envs.registration import make
    from serl.envs.stack import make_policy_env
    from serl.reward.near_miss import NearMissOperator

    raw = make(config.env_id, config=dataclasses.replace(config.env, reward="dense"))
    scripted = ScriptedOperator(raw, config.operator.driving(), seed=seed)
    device = NearMissOperator(scripted, config.reward.labels.near_miss, seed=seed)
    return make_policy_env(raw, config.wrappers, classifier=classifier, device=device), device


def operator_env(config):
    """The policy env for operator labels: label mode (a held "mark_success" labels frames and ends
    nothing) and no reward that could end an episode at a mark or a classifier's call (no human
    reward, no classifier)."""
    from serl.commands.runtime import build_env
    from serl.devices import check_device_controls

    try:
        check_device_controls(
            config.device, {"mark_success": "a frame is a success while it is held"}
        )
    except ValueError as err:  # refused before the rig is touched
        raise SystemExit(f"serl record-labels: {err}") from None
    return build_env(
        dataclasses.replace(
            config,
            wrappers=dataclasses.replace(config.wrappers, marks_end_episode=False),
            reward=dataclasses.replace(config.reward, human=False, classifier_dir=None),
        )
    )


def record(config, folder: Path, label_from: str) -> Path | None:
    from serl.reward.labels import save_labels
    from serl.reward.recording import record_labels

    cameras = tuple(config.reward.classifier.image_keys)
    # Each session in a folder gets its own episodes (a second session with the same seed would
    # repeat the first).
    seed = config.seed + 200_000 + 10_000 * len(list(folder.glob("*.npz")))
    env, near_miss = sim_env(config, seed) if label_from == "sim" else (operator_env(config), None)
    try:
        labels = record_labels(env, cameras, label_from, config.reward.labels, seed, near_miss)
    finally:
        env.close()
    if not len(labels):
        print("no frames recorded")
        return None
    path = save_labels(folder, labels, source=label_from)
    print(
        f"saved {len(labels)} frames ({labels.positives} success, "
        f"{len(labels) - labels.positives} failure, "
        f"{len(np.unique(labels.episodes))} episodes) to {path}"
    )
    return path


def run_folder(config, run: str) -> Path:
    """runs_dir/RUN when it exists, else RUN as a folder path."""
    named = Path(config.runs_dir) / run
    return named if named.is_dir() else Path(run)


def ask(positive, index: int, total: int, preview: Path) -> str:
    """The operator's verdict on one frame: 'y' (a real success), 'n' (false), 's' (skip) or 'q'
    (stop)."""
    import imageio

    from serl.envs.video import camera_frame

    imageio.v2.imwrite(preview, camera_frame(positive.frame))
    while True:
        answer = (
            input(
                f"frame {index + 1}/{total} (classifier v{positive.version}, "
                f"p={positive.prob:.3f}), "
                f"image {preview}: a real success? [y/n/s(kip)/q(uit)] "
            )
            .strip()
            .lower()
        )
        if answer in ("y", "n", "s", "q"):
            return answer
        print("answer y, n, s or q")


def review(config, run: str, folder: Path, mark: str) -> Path | None:
    from serl.reward.labels import from_frames, save_labels
    from serl.reward.positives import FOLDER, UNKNOWN, load_positives, mark_reviewed

    source = run_folder(config, run) / FOLDER
    positives, problems = load_positives(source)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    if not positives:
        print(f"no unreviewed frames in {source}")
        return None
    unknown = sum(p.sim_succeed == UNKNOWN for p in positives)
    if mark == "sim" and unknown:  # refused before anything is labelled or moved: nothing is lost
        raise SystemExit(
            f"serl record-labels: --mark sim needs the simulator's success flag, which {unknown} "
            "of "
            f"the {len(positives)} frames in {source} do not have (a real rig has no success "
            "signal); "
            "use --mark ask"
        )
    verdicts: list[tuple[object, bool]] = []
    preview = source / "preview.png"
    for i, positive in enumerate(positives):
        if mark == "all-false":
            verdict = "n"
        elif mark == "sim":
            verdict = "y" if positive.sim_succeed == 1 else "n"
        else:
            verdict = ask(positive, i, len(positives), preview)
        if verdict == "q":
            break
        if verdict != "s":
            verdicts.append((positive, verdict == "y"))
    preview.unlink(missing_ok=True)
    if not verdicts:
        return None
    cameras = tuple(k for k in verdicts[0][0].frame if k != "state")
    labels = from_frames(
        [p.frame for p, _ in verdicts],
        [ok for _, ok in verdicts],
        list(range(len(verdicts))),
        cameras,
    )
    path = save_labels(folder, labels, source="hard_negatives")
    mark_reviewed([p for p, _ in verdicts])  # after the labels are safe on disk
    false = len(verdicts) - labels.positives
    print(f"saved {false} hard negatives and {labels.positives} confirmed successes to {path}")
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="serl record-labels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="labels folder (default: labels/<task>)"
    )
    parser.add_argument(
        "--label-from",
        choices=("sim", "operator"),
        default=None,
        help="where labels come from (default: sim for simulated tasks, else the operator's "
        "mark_success button)",
    )
    parser.add_argument(
        "--from-run",
        default=None,
        metavar="RUN",
        help="review the frames a classifier called success in runs/RUN (or the folder RUN)",
    )
    parser.add_argument(
        "--mark",
        choices=("ask", "all-false", "sim"),
        default="ask",
        help="with --from-run: ask per frame, mark every frame false, or use the simulator's flag",
    )
    parser.add_argument(
        "--all-false", action="store_true", help="with --from-run: same as --mark all-false"
    )
    args, config = parse_task_config(parser, argv)
    folder = args.out or Path("labels") / args.task
    if args.from_run:
        review(config, args.from_run, folder, "all-false" if args.all_false else args.mark)
        return 0
    label_from = args.label_from or (
        "sim" if config.env_id.startswith("serl/Panda") else "operator"
    )
    record(config, folder, label_from)
    return 0
