"""The agents' configurations (SAC and the success classifier), importable without jax, flax or
orbax: task configs and `serl SUB --help` load them without starting JAX."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from serl.networks.config import EncoderConfig


@dataclass(frozen=True)
class SACConfig:
    # pixel and state encoder
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # actor and critic MLPs
    hidden_dims: tuple[int, ...] = (256, 256)
    # critics in the ensemble (RLPD uses up to 10)
    critic_ensemble_size: int = 2
    # members whose minimum forms the target (REDQ); None: all
    critic_subsample: int | None = None
    # layer norm in the critic MLPs (RLPD's key stabiliser)
    critic_layer_norm: bool = True
    # per-step discount
    discount: float = 0.97
    # soft target update rate
    tau: float = 0.005
    # Adam, all networks
    learning_rate: float = 3e-4
    # initial entropy temperature
    init_temperature: float = 0.01
    # None: -action_dim / 2
    target_entropy: float | None = None
    # subtract the entropy term in the critic's target
    backup_entropy: bool = False
    # critic updates per actor update, all in one jitted update
    critic_actor_ratio: int = 2
    # lax.scan over the critic-only minibatches instead of unrolling (slow on XLA CPU)
    scan_ratio: bool = False
    # per minibatch (a full update consumes critic_actor_ratio minibatches)
    batch_size: int = 256
    # random-crop padding for camera frames; 0 disables
    augment_pad: int = 4
    # hybrid agent: SAC on the arm, a double-DQN critic on {close, stay, open}
    grasp_critic: bool = False
    # residual RL on a base policy (`wrappers.base_policy`): the executed action is the base's
    # plus this times the policy's correction in [-1, 1] (clipped to [-1, 1]); the correction's
    # mean starts at zero. None: no residual
    residual_scale: float | None = None

    def __post_init__(self) -> None:
        if self.residual_scale is not None and not 0 < self.residual_scale <= 2:
            raise ValueError(f"agent.residual_scale {self.residual_scale} must be in (0, 2]")
        if self.residual_scale is not None and self.grasp_critic:
            raise ValueError("agent.residual_scale with agent.grasp_critic: a residual corrects "
                             "every action entry of the base, the gripper's included; set "
                             "agent.grasp_critic=False (--agent.no-grasp-critic)")
        if self.augment_pad < 0:
            raise ValueError(f"agent.augment_pad {self.augment_pad} must be >= 0 (0 disables the "
                             "random crop)")
        enc = self.encoder
        if self.augment_pad > 0 and enc.feature_cache and enc.image_keys:
            # an honest switch: a crop that could never run must not read as active
            raise ValueError(
                f"agent.augment_pad={self.augment_pad} with agent.encoder.feature_cache=True: "
                f"sampled batches carry the cached trunk features of {', '.join(enc.image_keys)}, "
                "not their frames, so the random crop would never run. Set agent.augment_pad=0 "
                "(--agent.augment-pad 0) to train on the cache without augmentation, or "
                "agent.encoder.feature_cache=False (--agent.encoder.no-feature-cache) to crop the "
                "frames and run the frozen trunk in every update")


@dataclass(frozen=True)
class ClassifierConfig:
    # cameras the classifier looks at
    image_keys: tuple[str, ...] = ("front", "wrist")
    # every labelled frame must have this shape
    image_shape: tuple[int, int, int] = (128, 128, 3)
    # the pixel encoder (DESIGN.md's fixed architectures)
    trunk: Literal["small", "resnet10"] = "small"
    # per-camera feature size after the pooled bottleneck
    bottleneck_dim: int = 256
    # MLP head before the success logit
    hidden_dims: tuple[int, ...] = (256,)
    # frames per update, half success and half failure
    batch_size: int = 32
    # gradient updates
    steps: int = 400
    # Adam
    learning_rate: float = 3e-4
    # random-crop augmentation padding in pixels (0: no augmentation)
    crop_pad: int = 4
    # share of episodes held out for validation and the threshold
    validation_fraction: float = 0.2
    # the threshold is never below this
    min_threshold: float = 0.5
    # the threshold maximises validation F-beta (see choose_threshold)
    threshold_beta: float = 0.5
    # success is called after this many consecutive steps at or above the threshold: a lift
    # passing through the success height looks like success a step or two early
    confirm_steps: int = 3
    # initialisation, batches, augmentation and the episode split
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.image_keys:
            raise ValueError("classifier.image_keys is empty: the classifier needs at least one "
                             "camera")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"classifier.batch_size {self.batch_size} must be even (half "
                             "positive, half negative)")
        if self.confirm_steps < 1:
            raise ValueError(f"classifier.confirm_steps {self.confirm_steps} must be at least 1")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"classifier.validation_fraction {self.validation_fraction} must be "
                             "in (0, 1)")
