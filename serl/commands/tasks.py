"""`serl tasks`: the task configurations and what each is."""

from __future__ import annotations

import ast
import importlib.util

import experiments


def summary(name: str) -> str:
    """The first line of task `name`'s docstring, read from its source without importing it (so that
    listing the tasks, here and in `SUB --help`, stays instant)."""
    origin = importlib.util.find_spec(f"experiments.{name}").origin
    with open(origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def task_lines() -> list[str]:
    """One line per task: its name and what it is."""
    return [f"{name:<24} {summary(name)}" for name in experiments.names()]


def main(argv: list[str]) -> int:
    print("\n".join(task_lines()))
    return 0
