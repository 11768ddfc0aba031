"""`serl keys generate DIR [--actor NAME ...]`: make CURVE key pairs for the learner and each actor.
`serl keys add DIR NAME [NAME ...]`: add actors' key pairs to such a folder.

DIR/learner stays on the learner's machine (its secret key and the accepted actors' public keys, in
DIR/learner/authorized); copy DIR/actor to the robot PC (each actor's secret key and the learner's
public key). Then pass --transport.curve-keys DIR to the learner and to each actor.

A key acts only as the actor id it is named after: the learner accepts actor NAME only from a
connection made with NAME's key, so run each actor with --actor.actor-id NAME and make one key per
actor (the default key name is the default actor id, actor-0). Keys added to (or removed from)
DIR/learner/authorized while the learner runs count from that actor's next connection on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serl.transport.config import DEFAULT_ACTOR_ID


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    generate = sub.add_parser(
        "generate", help="create the learner's and the actors' key pairs in DIR",
        description="Create the learner's key pair and one per actor in DIR. A key acts only as "
                    "the actor id it is named after (run that actor with --actor.actor-id NAME).")
    generate.add_argument("dir", type=Path,
                          help="folder to create the keys in (must not hold keys already)")
    generate.add_argument("--actor", action="append", dest="actors", metavar="NAME",
                          help="an actor's id, which names its key and is the only id the key may "
                               f"act as (repeat for several; default: {DEFAULT_ACTOR_ID})")
    add = sub.add_parser(
        "add", help="add actors' key pairs to a DIR made by `serl keys generate`",
        description="Add a key pair per actor id to DIR (the learner picks each up at that actor's "
                    "next connection, no restart needed); copy DIR/actor/NAME.key_secret to the "
                    "actor's machine.")
    add.add_argument("dir", type=Path, help="the folder `serl keys generate` made")
    add.add_argument("names", nargs="+", metavar="NAME",
                     help="actor id, the only one its key may act as")
    args = parser.parse_args(argv)

    from serl.transport.keys import add_actor_keys, generate_keys

    try:
        if args.action == "add":
            secrets = add_actor_keys(args.dir, tuple(args.names))
            print(f"added: {', '.join(str(p) for p in secrets)} (copy each to its actor's "
                  "machine, beside learner.key)")
            return 0
        actors = tuple(args.actors or [DEFAULT_ACTOR_ID])
        folders = generate_keys(args.dir, actors)
    except (OSError, ValueError) as e:
        print(f"serl keys: error: {e}", file=sys.stderr)
        return 1
    print(f"learner keys: {folders['learner']} (keep here; accepted actors' public keys in "
          f"{folders['learner'] / 'authorized'})")
    print(f"actor keys:   {folders['actor']} (copy to the robot PC): {', '.join(actors)}; each "
          "acts only as that --actor.actor-id")
    return 0
