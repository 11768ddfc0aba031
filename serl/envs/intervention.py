"""Who acts: the intervention wrapper, innermost in the policy's wrapper stack (`make_policy_env`),
and the operator controls (pause, abort, marks, reset confirmation) it turns into episode
outcomes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from serl.devices.base import DeviceState, InterventionDevice, device_controls, require_controls

log = logging.getLogger("serl.operator")
# (raw obs, base-frame action) -> executed action
ActionRoundtrip = Callable[[dict, np.ndarray], np.ndarray]


class InterventionWrapper(gym.Wrapper):
    """Decides who acts, and is the only place that does: each step it reads the device, and when
    the operator is active (or was, within the last `hold_steps` steps, so control does not flicker
    at the dead-zone's edge) executes the device's base-frame action (clipped to [-1, 1], then
    passed through `action_roundtrip` with the last raw observation) instead of the policy's. During
    evaluation (`interventions_enabled` False) the policy alone acts, but the operator controls
    still work.

    Operator controls act once per press (rising edge of `DeviceState.buttons`). "abort" truncates
    the episode without stepping the env: nothing is sent to the arm, the step returns the last
    observation, reward 0, truncated, `info["aborted"]` and `info["executed"]` False (a step that
    moved nothing is no transition: the actor records none for it). "mark_success" ends the episode
    as a success (terminated, reward 1, `info["succeed"]` True) and "mark_failure" as a failure
    (truncated, `info["succeed"]` False) after the step's action; `info["marked"]` names the mark.
    "pause" makes the step wait, before anything is sent, until pause is pressed again (or abort, or
    `operator_stop` is set): no command reaches the arm meanwhile, so it holds. The policy's action
    was chosen from the observation before the pause, so it is never sent after one: the step
    resumes with the operator's action when they act, else a hold (zero motion, gripper kept),
    reported as `info["executed_action"]` (zeros: the same in every frame) so the hold is what gets
    recorded. With `confirm_reset`, reset() waits after the arm's reset until the operator presses
    "confirm_reset", then re-observes if the env can (`observe()`); a device that declares it cannot
    produce "confirm_reset" is refused at construction. These are the only waits on the operator in
    the loop.

    Label mode (`marks_end_episode` False, for `serl record-labels`): "mark_success" ends nothing
    and sets no outcome, so the operator holds it over the success frames (`info["held"]` says which
    steps); the episode ends on abort, "mark_failure" or the env's own end (time limit). A control
    counts as held only from a press seen in this episode: one still held from the last episode
    counts again after a release the wrapper reads (one step without it), so a button held through a
    reset never labels the next episode.

    info: `intervened` (bool), `executed` (bool: the env was stepped), `buttons` (the device's
    controls), `held` (the controls pressed in this episode and held since: a tuple) and `paused_s`
    (seconds paused in this step, which are not episode time) every step; `intervene_action` (the
    executed base-frame action, float32) only when the operator acted; reset's info has
    `reset_wait_s`. An aborted step has `succeed_known` False: no env step, so no success signal.
    """

    def __init__(
        self,
        env: gym.Env,
        device: InterventionDevice,
        action_roundtrip: ActionRoundtrip | None = None,
        hold_steps: int = 0,
        confirm_reset: bool = False,
        poll_s: float = 0.05,
        marks_end_episode: bool = True,
    ):
        super().__init__(env)
        if confirm_reset:
            require_controls(
                device_controls(device),
                {"confirm_reset": "confirm_reset: every reset waits for it"},
                type(device).__name__,
            )
        self.device = device
        self.action_roundtrip = action_roundtrip
        self.hold_steps, self.confirm_reset, self.poll_s = hold_steps, confirm_reset, poll_s
        # False: "mark_success" labels held steps, ends nothing
        self.marks_end_episode = marks_end_episode
        self.interventions_enabled = True  # False during evaluation episodes: the policy alone acts
        # set by the loop's owner so a wait ends on shutdown
        self.operator_stop: threading.Event | None = None
        self._raw_obs: dict | None = None
        self._hold_left = 0
        self._held: frozenset[str] = frozenset()  # the controls in the last read
        self._live: frozenset[str] = frozenset()  # those pressed in this episode and held since

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._hold_left = 0
        if self.confirm_reset:
            _, _, info["reset_wait_s"] = self._wait_for("confirm_reset")
            if callable(observe := getattr(self.env.unwrapped, "observe", None)):
                # the scene as the operator left it, not as it was before they tidied it
                obs = observe()
        self._raw_obs = obs
        # a control held through the reset must be released before it counts again
        self._live = frozenset()
        return obs, info

    def step(self, action):
        state, pressed = self._read()
        paused_s, held = 0.0, False
        if "pause" in pressed:
            state, more, paused_s = self._wait_for("pause", "abort")
            pressed = (pressed | more) - {"pause"}
            held = True  # the policy's action is stale now
        ends = pressed if self.marks_end_episode else pressed - {"mark_success"}
        if "abort" in pressed:  # nothing reaches the arm: the episode ends where it stands
            info = dict(
                succeed=False,
                succeed_known=False,
                executed=False,
                intervened=False,
                buttons=state.buttons,
                held=self._held_now(),
                paused_s=paused_s,
            )
            return (self._raw_obs, *apply_controls(ends, 0.0, False, False, info))
        acting = self._operator_acts(state.active)
        if acting:
            action = np.clip(np.asarray(state.action, np.float64), -1.0, 1.0)
            if self.action_roundtrip is not None:
                action = self.action_roundtrip(self._raw_obs, action)
        elif held:
            action = np.zeros(np.shape(action), np.float32)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._raw_obs = obs
        info.update(
            intervened=acting,
            executed=True,
            buttons=state.buttons,
            held=self._held_now(),
            paused_s=paused_s,
        )
        if acting:
            info["intervene_action"] = np.asarray(action, np.float32)
        elif held:
            info["executed_action"] = np.asarray(action, np.float32)
        return (obs, *apply_controls(ends, reward, terminated, truncated, info))

    def close(self):
        if callable(close := getattr(self.device, "close", None)):
            close()  # a device's reader thread or terminal mode ends with the env
        super().close()

    def _read(self) -> tuple[DeviceState, frozenset[str]]:
        """The device's state and the controls newly pressed since the previous read (rising
        edges)."""
        state = self.device.read()
        buttons = frozenset(state.buttons)
        pressed, self._held = buttons - self._held, buttons
        self._live = (self._live | pressed) & buttons
        return state, pressed

    def _held_now(self) -> tuple[str, ...]:
        return tuple(sorted(self._live))

    def _wait_for(self, *controls: str) -> tuple[DeviceState, frozenset[str], float]:
        """Poll the device every `poll_s` until one of `controls` is pressed or `operator_stop` is
        set; returns the last state, the controls pressed with it and the seconds waited. Nothing is
        sent to the env meanwhile."""
        log.warning("waiting for the operator: press %s", " or ".join(controls))
        start = time.monotonic()
        while True:
            state, pressed = self._read()
            if pressed & set(controls) or (
                self.operator_stop is not None and self.operator_stop.is_set()
            ):
                return state, pressed, time.monotonic() - start
            time.sleep(self.poll_s)

    def _operator_acts(self, device_active: bool) -> bool:
        if not self.interventions_enabled:
            self._hold_left = 0
            return False
        if device_active:
            self._hold_left = self.hold_steps
            return True
        if self._hold_left > 0:
            self._hold_left -= 1
            return True
        return False


def apply_controls(
    pressed: frozenset[str], reward: float, terminated: bool, truncated: bool, info: dict
):
    """(reward, terminated, truncated, info) after the operator's newly pressed controls: abort wins
    over a mark, a failure mark over a success mark (when in doubt, do not teach a success)."""
    if "abort" in pressed:
        info["aborted"] = True
        return reward, terminated, True, info
    if "mark_failure" in pressed:
        info.update(succeed=False, marked="failure")
        return reward, terminated, True, info
    if "mark_success" in pressed:
        info.update(succeed=True, marked="success")
        return 1.0, True, truncated, info
    return reward, terminated, truncated, info
