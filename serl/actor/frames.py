"""Camera frames as the learner will decode them: the wire's codec (`FrameCodec`) round trip, run
on what the policy sees and, in single-process training, on what the in-process learner stores, so
both modes train on the same frames."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from serl.data import TransitionSpec
from serl.envs.contract import policy_spaces
from serl.transport.codec import FrameCodec
from serl.transport.frames import FrameCache
from serl.transport.interfaces import Adder, Transition


class FrameView:
    """`observation(obs)`: `obs` with each camera frame replaced by `codec.roundtrip(frame)`.

    A frame is seen twice on the actor (the policy's observation at step t + 1, and the wire's
    `next_observations` of step t): `cache` (give it to the ZeroMQ transport) keeps its JPEG by
    frame object, checked against a copy of its content, so it is encoded once, a camera that
    refills one buffer in place never gets a stale frame, and nothing is hashed."""

    def __init__(self, codec: FrameCodec, camera_keys: tuple[str, ...], cache_size: int = 8):
        self.codec, self.camera_keys = codec, tuple(camera_keys)
        self.cache = FrameCache(codec, max(cache_size, 4 * len(self.camera_keys)))

    @property
    def lossless(self) -> bool:
        """Nothing changes: no camera, or frames travel as raw arrays."""
        return not self.camera_keys or self.codec.jpeg_quality is None

    def frame(self, frame: np.ndarray) -> np.ndarray:
        return self.cache.roundtrip(frame)

    def observation(self, obs: Mapping) -> Mapping:
        if self.lossless:
            return obs
        return {k: self.frame(v) if k in self.camera_keys else v for k, v in obs.items()}


class RoundtripAdder:
    """An `Adder` that passes each transition's camera frames through `view` first: what a learner
    behind the ZeroMQ transport decodes, so an in-process learner stores the same frames (and, as
    the view returns one decoded frame per camera frame, pairs them the same way)."""

    def __init__(self, adder: Adder, view: FrameView):
        self.adder, self.view = adder, view

    def add(self, transition: Transition) -> None:
        self.adder.add({**transition,
                        "observations": self.view.observation(transition["observations"]),
                        "next_observations": self.view.observation(
                            transition["next_observations"])})

    def flush(self, timeout: float | None = None) -> bool:
        return self.adder.flush(timeout)

    @property
    def full(self) -> bool:
        """The inner adder's spool is full (never, for the in-process one)."""
        return bool(getattr(self.adder, "full", False))

    def pending(self) -> int:
        return self.adder.pending()


def frame_view(config) -> FrameView:
    """The task's wire codec (`transport.jpeg_quality`) over its camera keys (the contract's)."""
    spec = TransitionSpec.from_spaces(*policy_spaces(config.env, config.wrappers))
    return FrameView(FrameCodec(config.transport.jpeg_quality), spec.camera_keys)
