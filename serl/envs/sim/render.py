"""Offscreen rendering of the scene's cameras, with an error that says how to fix a missing OpenGL
backend."""

from __future__ import annotations

import os

import numpy as np

from serl.envs.sim.gl import GL_HELP, mujoco


class CameraRenderer:
    """Renders named cameras of one model into uint8 (size, size, 3) arrays."""

    def __init__(self, model: mujoco.MjModel, cameras: tuple[str, ...], size: int):
        try:
            self._renderer = mujoco.Renderer(model, height=size, width=size)
        # the backends raise ImportError, RuntimeError or their own GL errors
        except Exception as err:
            raise RuntimeError(GL_HELP.format(value=os.environ.get("MUJOCO_GL"), err=err)) from err
        for name in cameras:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) < 0:
                raise ValueError(f"unknown camera {name!r}")
        self.cameras = cameras

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        frames = {}
        for name in self.cameras:
            self._renderer.update_scene(data, camera=name)
            frames[name] = self._renderer.render()
        return frames

    def close(self) -> None:
        self._renderer.close()
