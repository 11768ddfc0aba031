"""A classifier folder holds numbered versions, `v0001/`, `v0002/`, ...: each with `params.msgpack`
(flax serialization, never pickle) and `meta.json` (version, threshold, cameras, image shape,
config, metrics).

A version is written in a temporary folder and renamed into place, so a version folder that exists
is complete; the actor can poll the folder between episodes and load the newest version without
coordination.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from serl.durable import fsync_directory, write_bytes

VERSION = re.compile(r"^v(\d{4,})$")
PARAMS, META = "params.msgpack", "meta.json"


def versions(folder: str | Path) -> list[int]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        int(m.group(1)) for p in folder.iterdir() if p.is_dir() and (m := VERSION.match(p.name))
    )


def latest_version(folder: str | Path) -> int | None:
    found = versions(folder)
    return found[-1] if found else None


def version_dir(folder: str | Path, version: int) -> Path:
    return Path(folder) / f"v{version:04d}"


def save_version(folder: str | Path, params, cfg, report: dict) -> Path:
    """Write the next version of the classifier in `folder`; returns its folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        version = (latest_version(folder) or 0) + 1
        tmp = folder / f".v{version:04d}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        meta = {
            "version": version,
            "threshold": report["threshold"],
            "image_keys": list(cfg.image_keys),
            "image_shape": list(cfg.image_shape),
            "config": dataclasses.asdict(cfg),
            "report": report,
        }
        write_bytes(tmp / PARAMS, serialization.to_bytes(params))
        write_bytes(tmp / META, json.dumps(meta, indent=1, default=_jsonable).encode())
        fsync_directory(tmp)
        try:
            # fails if another trainer took this number first
            os.rename(tmp, version_dir(folder, version))
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        fsync_directory(folder)
        return version_dir(folder, version)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def config_from_meta(meta: dict):
    from serl.agents.config import ClassifierConfig

    fields = {f.name for f in dataclasses.fields(ClassifierConfig)}
    values = {
        k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items() if k in fields
    }
    return ClassifierConfig(**values)


def load_version(folder: str | Path, version: int | None = None) -> tuple[dict, dict]:
    """(params, meta) of a version (default: the newest); FileNotFoundError when the folder has
    none."""
    from serl.agents.classifier import init_params

    folder = Path(folder)
    version = latest_version(folder) if version is None else version
    if version is None:
        raise FileNotFoundError(
            f"no classifier version (v0001/, ...) in {folder}: train one with `serl train-reward`"
        )
    path = version_dir(folder, version)
    meta = json.loads((path / META).read_text())
    cfg = config_from_meta(meta)
    template = init_params(cfg, jax.random.PRNGKey(0))
    params = serialization.from_bytes(template, (path / PARAMS).read_bytes())
    return params, meta


class ClassifierFolder:
    """The newest classifier of a folder as a callable (flattened observation -> success
    probability), with `version`, `threshold` and `confirm_steps`. `refresh()` loads a newer version
    when one has appeared; the reward wrapper calls it between episodes, so an episode is judged by
    one version from start to end."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.version, self.threshold, self.confirm_steps, self.meta = 0, 1.0, 1, {}
        self._params, self._probs = None, None
        if not self.refresh():
            raise FileNotFoundError(
                f"no classifier version in {self.folder}: train one with `serl train-reward`"
            )

    def refresh(self) -> bool:
        """Load the newest version if it is newer than the one in use; returns whether one was
        loaded."""
        newest = latest_version(self.folder)
        if newest is None or newest <= self.version:
            return False
        from serl.agents.classifier import probabilities_fn

        params, meta = load_version(self.folder, newest)
        cfg = config_from_meta(meta)
        self._probs = probabilities_fn(cfg)
        self._params, self.meta, self.cfg = params, meta, cfg
        self.version, self.threshold = int(meta["version"]), float(meta["threshold"])
        self.confirm_steps = cfg.confirm_steps
        return True

    def __call__(self, obs: dict) -> float:
        images = {}
        for key in self.cfg.image_keys:
            frame = np.asarray(obs[key])
            if frame.shape != tuple(self.cfg.image_shape):
                raise ValueError(
                    f"camera {key!r} frame is {frame.shape}, classifier v{self.version} expects "
                    f"{tuple(self.cfg.image_shape)}"
                )
            images[key] = frame[None]
        return float(self._probs(self._params, images)[0])
