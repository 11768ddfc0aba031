"""Test-wide settings, applied before any test module imports JAX or MuJoCo.

The JAX persistent compilation cache is shared by every test process (subprocesses inherit the
variables), so a jitted function compiled once is reused across the suite and across runs.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_ROOT / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One tiny real `serl train-bc` run, shared by the BC and base-policy tests: 3 demos recorded
    by the scripted operator, 50 updates, 2 evaluation episodes; (the process, its folder)."""
    tmp = tmp_path_factory.mktemp("bc")
    out = subprocess.run(
        [sys.executable, "-m", "serl.cli", "train-bc", "sim_pick_cube_state", "--demos-dir",
         str(tmp / "demos"), "--demo-episodes", "3", "--bc.steps", "50", "--bc.hidden-dims", "32",
         "32", "--eval-episodes", "2", "--out", str(tmp / "policy.npz")],
        cwd=_ROOT, capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-3000:]
    return out, tmp
