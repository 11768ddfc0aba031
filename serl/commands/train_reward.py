"""`serl train-reward TASK`: train the success classifier on every label file of the labels folder
(default `labels/<task>/`: sim- or operator-labelled sessions and hard negatives from runs), print
the validation metrics and the chosen threshold, and save it as the next version in the classifier
folder (default `classifiers/<task>/`). A running actor whose `reward.classifier_dir` is that folder
picks the new version up at its next episode."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serl.commands.config_args import parse_task_config


def load_training_labels(folder: Path, cfg):
    """Every label file of `folder`, checked against the classifier config (naming the file that
    differs)."""
    from serl.agents.classifier_data import check_labels
    from serl.reward.labels import concatenate, load_label_folder

    sets, problems = load_label_folder(folder)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    for path, labels in sets.items():
        check_labels(labels, cfg, name=path.name)
        # other cameras recorded are not used
        labels.images = {k: labels.images[k] for k in cfg.image_keys}
    return concatenate(list(sets.values())), sorted(p.name for p in sets)


def train_and_save(labels_dir: Path, out: Path, cfg) -> tuple[Path, dict]:
    from serl.agents.classifier import train
    from serl.reward.store import save_version

    labels, files = load_training_labels(labels_dir, cfg)
    print(
        f"{len(labels)} frames ({labels.positives} success) from {len(files)} label file(s) in "
        f"{labels_dir}"
    )
    params, report = train(labels, cfg)
    report["label_files"] = files
    return save_version(out, params, cfg, report), report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl train-reward", description=__doc__)
    parser.add_argument(
        "--labels", type=Path, default=None, help="labels folder (default: labels/<task>)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="classifier folder (default: the config's reward.classifier_dir, else "
        "classifiers/<task>)",
    )
    args, config = parse_task_config(parser, argv)
    labels_dir = args.labels or Path("labels") / args.task
    out = args.out or Path(config.reward.classifier_dir or Path("classifiers") / args.task)
    try:
        path, report = train_and_save(labels_dir, out, config.reward.classifier)
    # one class, wrong image size, no labels: say so, no traceback
    except (ValueError, FileNotFoundError) as err:
        print(f"serl train-reward: {err}", file=sys.stderr)
        return 1
    v = report["validation"]
    keys = ("threshold", "validation", "validation_episodes", "train_episodes")
    print(json.dumps({k: report[k] for k in keys}))
    print(f"validation at threshold {report['threshold']:.3f}: accuracy {v['accuracy']:.3f}, "
          f"precision {v['precision']:.3f}, recall {v['recall']:.3f}, false-success rate "
          f"{v['false_success_rate']:.3f} ({v['positives']} success / {v['negatives']} failure "
          "frames)")
    print(f"saved {path}")
    return 0
