"""`BaseActionWrapper` shows the base the observation the policy sees: camera frames after the
wire codec's round trip (one encoding per frame, shared with the policy's view), not the env's
raw frames, on reset and on every step."""

import gymnasium as gym
import numpy as np
import pytest

from serl.actor.frames import FrameView
from serl.envs.base_action import BaseActionWrapper
from serl.envs.contract import BASE_ACTION_KEY
from serl.transport.frames import FrameCodec


class Camera(gym.Env):
    """A state and one camera of noise (which JPEG cannot keep exactly)."""

    observation_space = gym.spaces.Dict({
        "state": gym.spaces.Box(-1, 1, (3,), np.float32),
        "front": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)})
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def _obs(self) -> dict:
        return {"state": self.np_random.uniform(-1, 1, 3).astype(np.float32),
                "front": self.np_random.integers(0, 256, (32, 32, 3), np.uint8)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 0.0, False, False, {}


@pytest.mark.timeout(30)
def test_the_base_sees_the_codec_frames_the_policy_sees():
    view = FrameView(FrameCodec(90), ("front",))
    seen = []

    def base(obs):
        seen.append(obs)
        return np.full(2, 0.5, np.float32)

    env = BaseActionWrapper(Camera(), base, view.observation)
    observations = [env.reset(seed=0)[0]] + [env.step(np.zeros(2))[0] for _ in range(2)]
    assert len(seen) == 3
    for obs, base_saw in zip(observations, seen, strict=True):
        assert obs[BASE_ACTION_KEY].tolist() == [0.5, 0.5]
        raw = obs["front"]  # the stack's own observation keeps the env's frame
        assert not np.array_equal(base_saw["front"], raw)
        np.testing.assert_array_equal(base_saw["front"], FrameCodec(90).roundtrip(raw))
        # the policy's view then finds the frame already encoded: the very array the base saw
        assert view.observation(obs)["front"] is base_saw["front"]
        np.testing.assert_array_equal(base_saw["state"], obs["state"])
