"""MuJoCo, imported with an OpenGL backend chosen first.

MuJoCo fixes its OpenGL backend when it is first imported, so every module of this package imports
`mujoco` from here: EGL where libEGL is present (headless, works on a CPU with Mesa), else OSMesa. A
value the user set in MUJOCO_GL is left alone.
"""

import ctypes.util
import os

GL_HELP = (
    "MuJoCo could not set up offscreen OpenGL (MUJOCO_GL={value!r}). Set MUJOCO_GL=egl (needs the "
    "Debian/Ubuntu packages libegl1 and libgl1-mesa-dri) or MUJOCO_GL=osmesa (needs libosmesa6) "
    "before Python starts. Original error: {err!r}"
)


def _default_gl_backend() -> str | None:
    if ctypes.util.find_library("EGL"):
        return "egl"
    if ctypes.util.find_library("OSMesa"):
        return "osmesa"
    return None


if "MUJOCO_GL" not in os.environ and (_backend := _default_gl_backend()):
    os.environ["MUJOCO_GL"] = _backend

try:
    # imports the chosen GL backend, which fails here if its libraries are missing
    import mujoco
except (ImportError, AttributeError, OSError) as _err:
    raise RuntimeError(GL_HELP.format(value=os.environ.get("MUJOCO_GL"), err=_err)) from _err

__all__ = ["GL_HELP", "mujoco"]
