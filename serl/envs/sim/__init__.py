"""The MuJoCo Panda: scene, controller, tasks and rendering.

MuJoCo fixes its OpenGL backend when it is first imported, so the default is chosen here, before any module of
this package imports it: EGL where libEGL is present (headless, works on a CPU with Mesa), else OSMesa. A value the
user set in MUJOCO_GL is left alone.
"""

import ctypes.util
import os


def _default_gl_backend() -> str | None:
    if ctypes.util.find_library("EGL"):
        return "egl"
    if ctypes.util.find_library("OSMesa"):
        return "osmesa"
    return None


if "MUJOCO_GL" not in os.environ and (_backend := _default_gl_backend()):
    os.environ["MUJOCO_GL"] = _backend
