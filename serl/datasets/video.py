"""mp4 streams through the ffmpeg that `imageio-ffmpeg` bundles: frames are piped to and from an
ffmpeg process, so a video of any length passes with one frame in memory at a time.

Written as LeRobot encodes (`lerobot/datasets/video_utils.py` encode_video_frames): yuv420p, a
keyframe every 2 frames, no B-frames, constant frame rate, so frame i of a file is at i / fps and
LeRobot's decoders (torchcodec, pyav) find each frame at its timestamp. The codec is H.264
(libx264): upstream's default AV1 (libsvtav1) decodes the same way but encodes far slower on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CODEC, ENCODER, PIX_FMT = "h264", "libx264", "yuv420p"
GOP = 2  # a keyframe every 2 frames, as upstream: random access decodes at most one extra frame
DEFAULT_CRF = 23  # libx264's default quality; 128x128 camera frames: ~1.5 grey levels mean error


class VideoEncoder:
    """One mp4 file being written: `write` frames (uint8, H x W x 3), then `close`."""

    def __init__(self, path: Path, height: int, width: int, fps: float, crf: int = DEFAULT_CRF):
        import imageio_ffmpeg

        if height % 2 or width % 2:
            raise ValueError(f"{path.parent.name}: frames {height}x{width}; {PIX_FMT} video needs "
                             "an even height and width")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.shape, self.frames = path, (height, width, 3), 0
        self._writer = imageio_ffmpeg.write_frames(
            str(path), (width, height), fps=fps, codec=ENCODER, pix_fmt_out=PIX_FMT,
            quality=None, macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-crf", str(int(crf)), "-g", str(GOP), "-bf", "0", "-preset", "medium"])
        self._writer.send(None)

    def write(self, frames: np.ndarray) -> None:
        """Append frames, in order."""
        for frame in frames:
            if frame.shape != self.shape or frame.dtype != np.uint8:
                raise ValueError(f"{self.path}: a {frame.dtype} frame of shape {frame.shape}, "
                                 f"expected uint8 {self.shape}")
            self._writer.send(np.ascontiguousarray(frame))
            self.frames += 1

    def close(self) -> None:
        """Finish the file (ffmpeg writes its index); idempotent."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def megabytes(self) -> float:
        """Bytes written so far, in MiB (upstream's file-size unit)."""
        return self.path.stat().st_size / 2**20 if self.path.exists() else 0.0


def video_info(height: int, width: int, fps: float) -> dict[str, Any]:
    """A video feature's `info` in info.json (upstream get_video_info's keys)."""
    return {"video.height": height, "video.width": width, "video.codec": CODEC,
            "video.pix_fmt": PIX_FMT, "video.is_depth_map": False,
            "video.fps": int(fps) if float(fps).is_integer() else float(fps),
            "video.channels": 3, "has_audio": False}


def probe(path: Path) -> dict[str, Any]:
    """What ffmpeg reports of a video file: size (width, height), fps, duration, codec."""
    import imageio_ffmpeg

    frames = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        return next(frames)
    finally:
        frames.close()


class FrameReader:
    """The frames of one video file, decoded in order: `read(start, count)` for starts that do not
    go back is one pass over the file (a start before the last read reopens it)."""

    def __init__(self, path: Path):
        self.path = path
        self._frames: Iterator[bytes] | None = None
        self.position, self.shape = 0, (0, 0, 3)

    def _open(self) -> None:
        import imageio_ffmpeg

        self.close()
        if not self.path.is_file():
            raise ValueError(f"{self.path}: video file missing")
        self._frames = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24")
        try:
            meta = next(self._frames)
        except (OSError, RuntimeError, StopIteration) as err:
            raise ValueError(f"{self.path}: not a readable video ({err})") from None
        width, height = meta["size"]
        self.position, self.shape = 0, (int(height), int(width), 3)

    def read(self, start: int, count: int) -> np.ndarray:
        """Frames start .. start + count - 1 as uint8 (count, H, W, 3)."""
        if self._frames is None or start < self.position:
            self._open()
        out = np.empty((count, *self.shape), np.uint8)
        while self.position < start + count:
            frame = next(self._frames, None)
            if frame is None:
                raise ValueError(f"{self.path}: {self.position} frames, the episode table wants "
                                 f"frames {start} to {start + count - 1}")
            if self.position >= start:
                out[self.position - start] = np.frombuffer(frame, np.uint8).reshape(self.shape)
            self.position += 1
        return out

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None
