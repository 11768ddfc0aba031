"""The `serl` command: `serl SUB ...`. Each subcommand lives in its own module with `main(argv) ->
int`, imported only when run so that `serl --help` stays instant. Later work adds entries to
COMMANDS."""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tasks": ("serl.commands.tasks", "list the task configurations in experiments/"),
    "scripted": ("serl.commands.scripted",
                 "run the scripted operator on a simulated task: success rate and a video"),
    "record-demos": ("serl.commands.record_demos",
                     "record demonstration episodes (the scripted operator in sim)"),
    "record-labels": ("serl.commands.record_labels",
                      "record success-labelled frames (sim: the simulator's flag), or review a "
                      "run's --from-run"),
    "train-reward": ("serl.commands.train_reward",
                     "train the reward classifier on the labels folder; next version"),
    "train-bc": ("serl.commands.train_bc",
                 "behaviour-clone a policy from the task's demos: held-out error, success, file"),
    "serve-policy": ("serl.commands.serve_policy",
                     "serve a policy file as a base policy over ZeroMQ: serl serve-policy FILE "
                     "--port P"),
    "train": ("serl.commands.train",
              "train a task: learner and actor (scripted operator in simulation)"),
    "eval": ("serl.commands.eval",
             "evaluate a run's latest checkpoint without interventions: success rate, videos"),
    "learner": ("serl.commands.learner",
                "run the learner half of a run, serving actors over ZeroMQ"),
    "actor": ("serl.commands.actor",
              "run the actor half of a run (the robot side), connecting to a learner"),
    "check-rig": ("serl.commands.check_rig",
                  "check a rig: its YAML, robot server, cameras and SpaceMouse (a table)"),
    "keys": ("serl.commands.keys",
             "CURVE key pairs for the learner and each actor id: serl keys generate DIR | "
             "serl keys add DIR NAME"),
    "import-encoder": ("serl.commands.import_encoder",
                       "convert a pretrained ResNet-10 weights pickle you trust into msgpack (the "
                       "only unpickling)"),
    "export": ("serl.commands.export",
               "a run's buffers or a demos folder as a LeRobotDataset v3.0: serl export SOURCE "
               "OUT --format lerobot"),
    "import-demos": ("serl.commands.import_demos",
                     "a LeRobotDataset as a task's demonstrations: serl import-demos DATASET "
                     "TASK"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: serl SUBCOMMAND [args]  (serl SUBCOMMAND --help for its options)",
        "",
        "subcommands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"serl: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
