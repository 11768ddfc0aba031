"""The wrapper stack between the raw env of DESIGN.md and the policy, inside out: intervention →
relative frame → action axes → quaternion to euler → flatten → reward classifier or the operator's
reward → gripper penalty → video, under `PolicyEnv`. `make_policy_env` builds it; its spaces are
`serl.envs.contract.policy_spaces`.

The stack's owner (the actor, a command) changes what it may through `PolicyEnv.controls`, never by
setting wrapper attributes by name.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import gymnasium as gym

from serl.devices.base import InterventionDevice
from serl.envs import frames
from serl.envs.action_axes import ARM_AXES
from serl.envs.axes_wrapper import ActionAxesWrapper
from serl.envs.base_action import BaseActionWrapper
from serl.envs.contract import policy_gripper
from serl.envs.intervention import InterventionWrapper
from serl.envs.observation import FlattenWrapper, QuatToEulerWrapper, RelativeFrameWrapper
from serl.envs.penalty import GripperPenaltyWrapper
from serl.envs.policy_config import PolicyEnvConfig
from serl.envs.reward_wrappers import HumanRewardWrapper, RewardClassifierWrapper
from serl.envs.video import VideoRecorder

__all__ = ["PolicyEnv", "PolicyEnvConfig", "StackControls", "make_policy_env"]


class StackControls:
    """The settings of a built stack its owner may change. Each setter returns True when applied and
    False when the stack lacks what it sets (no intervention device, a device without a take-over
    schedule, no reward classifier), so a caller can tell; nothing is silently ignored."""

    def __init__(self, intervention: InterventionWrapper | None,
                 classifier: RewardClassifierWrapper | None):
        self._intervention, self._classifier = intervention, classifier

    @property
    def has_interventions(self) -> bool:
        """The stack has an operator device (an intervention wrapper)."""
        return self._intervention is not None

    @property
    def has_classifier(self) -> bool:
        """The stack's reward comes from a success classifier."""
        return self._classifier is not None

    def set_interventions(self, enabled: bool) -> bool:
        """Operator take-overs on (training) or off (evaluation: the policy alone acts; the operator
        controls still work)."""
        if self._intervention is None:
            return False
        self._intervention.interventions_enabled = bool(enabled)
        return True

    def takeover_scale(self) -> float | None:
        """The operator device's take-over scale (the scripted operator's), or None when the device
        has no take-over schedule or there is no device."""
        device = self._intervention.device if self._intervention is not None else None
        scale = getattr(device, "takeover_scale", None)
        return None if scale is None else float(scale)

    def set_takeover_scale(self, scale: float) -> bool:
        """Multiply the device's take-over chance by `scale` (the actor lowers it as evaluation
        success rises)."""
        if self.takeover_scale() is None:
            return False
        self._intervention.device.takeover_scale = float(scale)
        return True

    def set_operator_stop(self, stop: threading.Event | None) -> bool:
        """The event that ends any wait on the operator (pause, reset confirmation) on shutdown."""
        if self._intervention is None:
            return False
        self._intervention.operator_stop = stop
        return True

    def set_positives_dir(self, path: str | Path | None) -> bool:
        """The folder where frames the classifier calls success are kept for review (None: none)."""
        if self._classifier is None:
            return False
        self._classifier.positives_dir = path
        return True


def _find(env: gym.Env, kind: type) -> gym.Env | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            return env
        env = env.env
    return None


class PolicyEnv(gym.Wrapper):
    """The outermost wrapper of the policy's stack: a gym.Env like any, plus `controls`."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.controls = StackControls(_find(env, InterventionWrapper),
                                      _find(env, RewardClassifierWrapper))


def operator_roundtrip(cfg: PolicyEnvConfig):
    """The intervention wrapper's round trip: the operator's base-frame action as executed, in the
    policy's frame and held to its axes (None: clipped per component, as the raw env would)."""
    if cfg.relative_frame:
        return functools.partial(frames.operator_roundtrip, axes=cfg.arm_axes)
    if cfg.arm_axes != ARM_AXES:
        return functools.partial(frames.base_frame_roundtrip, axes=cfg.arm_axes)
    return None


def make_policy_env(env: gym.Env, cfg: PolicyEnvConfig = PolicyEnvConfig(), classifier=None,
                    device: InterventionDevice | None = None,
                    video_path: str | Path | None = None, predicate=None,
                    human_reward: bool = False, base=None, base_view=None) -> PolicyEnv:
    """The raw env wrapped, inside out: intervention (if a device is given) → relative frame (if
    configured) → action axes (if the policy commands fewer than the 7 entries) → quaternion to
    euler → flatten → reward classifier (if given; `predicate` ANDed) or the operator's reward (if
    `human_reward`) → gripper penalty → video (if a path is given) → the base policy's action (if
`base`, a `serl.agents.base_policy.FileBasePolicy`, seeing observations through `base_view`: the
policy's frame view), under `PolicyEnv`."""
    gripper = policy_gripper(getattr(env.unwrapped, "cfg", None))  # False: the env locks it
    if device is not None:
        env = InterventionWrapper(env, device, operator_roundtrip(cfg),
                                  cfg.intervention_hold_steps, cfg.confirm_reset,
                                  cfg.operator_poll_s, cfg.marks_end_episode)
    if cfg.relative_frame:
        env = RelativeFrameWrapper(env)
    if cfg.arm_axes != ARM_AXES or not gripper:
        env = ActionAxesWrapper(env, cfg.arm_axes, gripper)
    env = FlattenWrapper(QuatToEulerWrapper(env))
    if classifier is not None:
        env = RewardClassifierWrapper(env, classifier, cfg.classifier_threshold, predicate)
    if human_reward:  # the operator's mark_success / mark_failure is the reward
        env = HumanRewardWrapper(env)
    env = GripperPenaltyWrapper(env, cfg.grasp_penalty)
    if video_path is not None:
        env = VideoRecorder(env, video_path, cfg.video_fps)
    if base is not None:
        if base_view is None:
            raise ValueError("a base policy needs the frame view its observations go through")
        env = BaseActionWrapper(env, base, base_view, cfg.base_reset_wait_s)
    return PolicyEnv(env)
