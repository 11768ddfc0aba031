"""`serl import-demos DATASET TASK [--map FILE.yaml] [mapping flags] [--demos-dir DIR]`: a
LeRobotDataset (v3.0; v2.1) becomes the task's demonstrations, one episode file each.

The mapping names the dataset feature behind each part of the task's transitions (a YAML file,
and/or the flags, which win); what it leaves out follows this project's export names. A missing or
mis-shaped feature, a camera of another size, an fps other than the task's control rate or an
action outside [-1, 1] is refused before anything is written, naming the feature and what to map
(docs/datasets.md).

With `--prior` the episodes are unlabelled prior data, not demonstrations: the dataset needs no
reward or done features (any it has are not read), the files go to the prior folder
(`learner.prior_dir`, default the demos folder's name + "-prior", or `--demos-dir`) and a learner
with `--learner.prior-fraction` > 0 rewards them with the task's classifier at start."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serl.commands.config_args import HELP_FLAGS, parse_task_config


def camera_pair(text: str) -> tuple[str, str]:
    name, sep, feature = text.partition("=")
    if not sep or not name or not feature:
        raise argparse.ArgumentTypeError(f"expected CAMERA=FEATURE, got {text!r}")
    return name, feature


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serl import-demos DATASET", description=__doc__,
                                     allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--map", type=Path, default=None, metavar="FILE.yaml",
                        help="the mapping: dataset feature names for state, cameras, action, "
                             "reward, terminated, truncated, grasp_penalty")
    parser.add_argument("--state", default=None, metavar="FEATURE[,FEATURE...]",
                        help="feature(s) concatenated into the state (default observation.state)")
    parser.add_argument("--camera", type=camera_pair, action="append", default=[],
                        metavar="CAMERA=FEATURE",
                        help="a camera's feature (default observation.images.CAMERA); repeat")
    parser.add_argument("--action", default=None, help="the action feature (default action)")
    parser.add_argument("--reward", default=None,
                        help="the reward feature (default next.reward), or success_at_end")
    parser.add_argument("--terminated", default=None,
                        help="feature, episode_end or never (default next.terminated, else "
                             "next.done, else episode_end)")
    parser.add_argument("--truncated", default=None,
                        help="feature or never (default next.truncated, else never)")
    parser.add_argument("--grasp-penalty", default=None,
                        help="feature or zero (default complementary_info.discrete_penalty, "
                             "else zero)")
    parser.add_argument("--demos-dir", type=Path, default=None,
                        help="where the episode files go (default: the config's demos_dir; with "
                             "--prior, learner.prior_dir, else DEMOS_DIR-prior)")
    parser.add_argument("--prior", action="store_true",
                        help="import as unlabelled prior data (no reward needed): the learner's "
                             "reward classifier rewards it, sampled at learner.prior_fraction")
    return parser


def prior_conflicts(args) -> list[str]:
    """The reward-side flags given with --prior (prior data is rewarded by the classifier)."""
    given = (("--reward", args.reward), ("--terminated", args.terminated),
             ("--truncated", args.truncated))
    return [flag for flag, value in given if args.prior and value is not None]


def main(argv: list[str]) -> int:
    parser = build_parser()
    dataset = None
    if argv and not argv[0].startswith("-"):
        dataset, argv = Path(argv[0]), argv[1:]
    elif not any(a in HELP_FLAGS for a in argv):
        parser.error("the following arguments are required: DATASET TASK")
    args, config = parse_task_config(parser, argv)
    from serl.datasets.import_map import ImportMapping, MappingError
    from serl.datasets.importing import import_lerobot
    from serl.learner.prior import default_prior_dir

    if conflicts := prior_conflicts(args):
        print(f"serl import-demos: {', '.join(conflicts)}: prior data is rewarded by the task's "
              "reward classifier when the learner starts; drop the flag, or import without "
              "--prior to use the dataset's own reward", file=sys.stderr)
        return 2
    try:
        mapping = ImportMapping.from_yaml(args.map) if args.map else ImportMapping()
        mapping = mapping.updated(
            state=tuple(args.state.split(",")) if args.state else None,
            cameras=tuple(args.camera), action=args.action, reward=args.reward,
            terminated=args.terminated, truncated=args.truncated,
            grasp_penalty=args.grasp_penalty)
        folder = args.demos_dir or (default_prior_dir(config) if args.prior else Path(
            config.demos_dir))
        paths = import_lerobot(dataset, config, folder, mapping,
                               lambda line: print(line, flush=True), prior=args.prior)
    except MappingError as err:
        print(f"serl import-demos: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"serl import-demos: {dataset}: {err}", file=sys.stderr)
        return 2
    if args.prior:
        print(f"saved {len(paths)} prior episodes (reward unknown) to {folder}/; the learner "
              "rewards them with the task's classifier when started with "
              "--learner.prior-fraction F (and --learner.prior-dir if elsewhere)", flush=True)
        return 0
    print(f"saved {len(paths)} demonstrations to {folder}/", flush=True)
    return 0
