"""`serl keys generate DIR [--actor NAME ...]`: make CURVE key pairs for the learner and each actor.

DIR/learner stays on the learner's machine (its secret key and the accepted actors' public keys, in
DIR/learner/authorized); copy DIR/actor to the robot PC (each actor's secret key and the learner's public key).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    generate = sub.add_parser("generate", help="create the learner's and the actors' key pairs in DIR")
    generate.add_argument("dir", type=Path, help="folder to create the keys in (must not hold keys already)")
    generate.add_argument("--actor", action="append", dest="actors", metavar="NAME",
                          help="an actor's key name (repeat for several; default: one named 'actor')")
    args = parser.parse_args(argv)

    from serl.transport.keys import generate_keys

    actors = tuple(args.actors or ["actor"])
    try:
        folders = generate_keys(args.dir, actors)
    except (OSError, ValueError) as e:
        print(f"serl keys: error: {e}", file=sys.stderr)
        return 1
    print(f"learner keys: {folders['learner']} (keep here; accepted actors' public keys in "
          f"{folders['learner'] / 'authorized'})")
    print(f"actor keys:   {folders['actor']} (copy to the robot PC): {', '.join(actors)}")
    return 0
