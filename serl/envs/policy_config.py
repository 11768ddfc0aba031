"""`PolicyEnvConfig`: how the policy's wrapper stack (`serl.envs.stack.make_policy_env`) is built.
Plain data, importable without gymnasium wrappers, jax or mujoco (task configs import it)."""

from __future__ import annotations

from dataclasses import dataclass

from serl.envs.action_axes import ARM_AXES, check_axes


@dataclass(frozen=True)
class PolicyEnvConfig:
    # the policy acts and sees its pose in the TCP frame (False: base frame, absolute pose)
    relative_frame: bool = True
    # arm axes of the policy's frame the policy commands (others held still, for the operator too);
    # a pick task that never tilts the hand: ("x", "y", "z", "yaw")
    arm_axes: tuple[str, ...] = ARM_AXES
    # magnitude of info["grasp_penalty"] on steps where the gripper changes state
    grasp_penalty: float = 0.1
    # success probability at which the reward classifier ends the episode
    classifier_threshold: float = 0.5
    video_fps: int = 10  # frame rate of recorded videos
    # steps the operator keeps control after the device goes idle (real rigs: ~3)
    intervention_hold_steps: int = 0
    # after each reset, wait for the operator's "confirm_reset" (real rigs; not in sim)
    confirm_reset: bool = False
    # device polling period while paused or waiting for the reset confirmation
    operator_poll_s: float = 0.05
    # "mark_success" ends the episode; False: it only labels the steps it is held
    marks_end_episode: bool = True
    # a base policy file (`serl train-bc`), or the tcp://host:port of a `serl serve-policy`: its
    # action for each observation is the observation's "base_action" entry (residual RL corrects
    # it: agent.residual_scale); "": none
    base_policy: str = ""
    # a served base's answer to one step must come within this; later, the episode ends and the
    # arm holds
    base_deadline_ms: float = 100.0
    # at a reset, how long to keep asking a served base that does not answer (the arm holds)
    base_reset_wait_s: float = 30.0

    def __post_init__(self) -> None:
        check_axes(self.arm_axes)
