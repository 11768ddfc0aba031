"""`serl tasks`: the task configurations and what each is."""

from __future__ import annotations

import importlib

import experiments


def main(argv: list[str]) -> int:
    for name in experiments.names():
        doc = (importlib.import_module(f"experiments.{name}").__doc__ or "").strip().splitlines()
        print(f"{name:<24} {doc[0] if doc else ''}")
    return 0
