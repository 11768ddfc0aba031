"""`VideoRecorder`: each episode's camera images as an mp4, outermost in the policy's stack."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import imageio
import numpy as np


def camera_frame(obs: dict) -> np.ndarray | None:
    """The observation's camera images side by side (raw obs with "images" or flattened obs), or
    None."""
    images = obs.get("images", obs)
    frames = [v for v in images.values()
              if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 3]
    return np.concatenate(frames, axis=1) if frames else None


class VideoRecorder(gym.Wrapper):
    """Writes each episode's camera images (side by side) to `<path>/episode_NNNN.mp4` when the
    episode ends, a new one starts, or on close(). Nothing is written for an episode without frames.
    `written` lists the files."""

    def __init__(self, env: gym.Env, path: str | Path, fps: int = 10):
        super().__init__(env)
        self.directory = Path(path)
        self.fps = fps
        self.written: list[Path] = []
        self._frames: list[np.ndarray] = []

    def reset(self, **kwargs):
        self._flush()
        obs, info = self.env.reset(**kwargs)
        self._record(obs)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._record(obs)
        if terminated or truncated:
            self._flush()
        return obs, reward, terminated, truncated, info

    def close(self):
        self._flush()
        super().close()

    def _record(self, obs: dict) -> None:
        if (frame := camera_frame(obs)) is not None:
            self._frames.append(frame)

    def _flush(self) -> None:
        if not self._frames:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        index = len(self.written)
        # never overwrite an earlier run's
        while (path := self.directory / f"episode_{index:04d}.mp4").exists():
            index += 1
        imageio.v2.mimwrite(path, self._frames, fps=self.fps)
        self.written.append(path)
        self._frames = []
