"""Test-wide settings, applied before any test module imports JAX or MuJoCo.

The JAX persistent compilation cache is shared by every test process (subprocesses inherit the
variables), so a jitted function compiled once is reused across the suite and across runs.
"""

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_ROOT / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
