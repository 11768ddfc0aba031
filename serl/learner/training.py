"""The training step: the agent replicated over the device mesh, minibatches sampled half online /
half demo on a prefetch thread, and the jitted update (its non-finite guard lives in the agent). The
frozen trunk, if any, is a constant beside the agent (replicated once, passed to every update, never
copied, checkpointed or published).

With `learner.prior_fraction` > 0 and a prior buffer holding `learner.min_prior` transitions, that
share of each minibatch comes from the prior buffer (`serl.learner.prior`) and the online/demo
halves split the rest; at 0 (the default) the batches are exactly those of a learner without one."""

from __future__ import annotations

import jax
import numpy as np

from serl.agents.config import SACConfig
from serl.agents.factory import example_observation, make_agent
from serl.agents.sharding import make_mesh, replicate, shard_batch
from serl.data import PrefetchIterator, ReplayStorage, sample_mixed
from serl.learner.config import LearnerConfig
from serl.learner.timing import LoopClock
from serl.networks.observation_encoder import (
    FEATURES_SUFFIX,
    trunk_feature_fn,
    trunk_feature_shape,
)
from serl.networks.trunk import frozen_trunk, trunk_fingerprint

# what the update reads of a sampled minibatch
UPDATE_FIELDS = ("observations", "next_observations", "actions", "rewards", "masks",
                 "grasp_penalty")


def feature_cache_options(agent_cfg: SACConfig, trunk, observation_space) -> dict:
    """Storage options for the frozen-trunk feature cache (computed once per frame at insertion);
    `trunk`: the frozen trunk's parameters."""
    enc = agent_cfg.encoder
    if not enc.feature_cache or not enc.image_keys:  # a state-only policy has no trunk to cache
        return {}
    features = {k + FEATURES_SUFFIX: (trunk_feature_shape(enc, observation_space[k].shape),
                                      np.float16) for k in enc.image_keys}
    return {"features": features, "feature_fn": trunk_feature_fn(trunk, enc),
            "drop_images_in_samples": True, "feature_source": trunk_fingerprint(enc)}


def sample_update_batch(online: ReplayStorage, demo: ReplayStorage, agent_cfg: SACConfig,
                        min_demo: int, rng: np.random.Generator,
                        prior: ReplayStorage | None = None, prior_fraction: float = 0.0,
                        min_prior: int = 1) -> dict:
    """critic_actor_ratio minibatches stacked on a leading axis, each half online and half demo
    (all online until the demo buffer holds `min_demo`); with a `prior` buffer holding `min_prior`
    transitions, `prior_fraction` of each minibatch comes from it first (`sample_mixed`)."""
    size = agent_cfg.batch_size
    if prior is None or prior_fraction <= 0 or prior.size < max(1, min_prior):
        prior = None
    with_demo = demo.size >= min_demo
    if prior is not None:
        draw = lambda: sample_mixed(  # noqa: E731
            online, demo if with_demo else None, size, rng, prior, prior_fraction)
    elif with_demo:
        draw = lambda: sample_mixed(online, demo, size, rng)  # noqa: E731
    else:
        draw = lambda: online.sample(size, rng)  # noqa: E731
    minibatches = [draw() for _ in range(agent_cfg.critic_actor_ratio)]
    picked = [{f: mb[f] for f in UPDATE_FIELDS} for mb in minibatches]
    return jax.tree.map(lambda *xs: np.stack(xs), *picked)


class Training:
    """Owns the agent and the frozen trunk; `update` runs one update on prefetched, sharded
    batches, timed into `clock` (waiting for a batch: "sampling"; the update until its result is
    ready: "update")."""

    def __init__(self, agent_cfg: SACConfig, cfg: LearnerConfig, observation_space,
                 action_dim: int, seed: int, clock: LoopClock | None = None):
        self.agent_cfg, self.cfg = agent_cfg, cfg
        self.mesh = make_mesh()
        devices = self.mesh.devices.size
        if agent_cfg.batch_size % devices:
            raise ValueError(f"agent.batch_size {agent_cfg.batch_size} must be divisible by the "
                             f"{devices} devices the update is split over")
        trunk = frozen_trunk(agent_cfg.encoder)
        agent = make_agent(agent_cfg, example_observation(observation_space), action_dim, seed)
        self.clock = clock or LoopClock()
        self.storage_options = feature_cache_options(agent_cfg, trunk, observation_space)
        if "feature_fn" in self.storage_options:
            self.storage_options["feature_fn"] = self._timed(self.storage_options["feature_fn"])
        self.agent = replicate(agent, self.mesh)
        self.trunk = None if trunk is None else replicate(trunk, self.mesh)
        self._prefetch: PrefetchIterator | None = None
        self._held: dict | None = None  # the held policy's parts, while it is held

    def _timed(self, feature_fn):
        """`feature_fn` timed into the clock as "trunk_features" (inside intake)."""
        def timed(obs: dict) -> dict:
            with self.clock.phase("trunk_features"):
                return feature_fn(obs)

        return timed

    def restored(self, agent) -> None:
        """Take a restored agent (from a checkpoint) in place of the fresh one."""
        self.agent = replicate(agent, self.mesh)

    def warm_start(self, params: dict) -> None:
        """Start the policy as `params` (a policy file's `policy_params()`, of this layout)."""
        from serl.agents.policy_file import PolicyFileError
        from serl.agents.warm_start import layout_difference, with_policy

        problem = layout_difference(jax.device_get(self.agent.policy_params()), params)
        if problem is not None:
            raise PolicyFileError(f"learner.warm_start: the file's policy is not this run's "
                                  f"layout ({problem}); train it with this run's agent config "
                                  "(serl train-bc TASK --bc.hidden-dims ...)")
        self.agent = replicate(with_policy(jax.device_get(self.agent), params), self.mesh)

    def pretrain_critic(self, demo: ReplayStorage, updates: int, rng: np.random.Generator,
                        stop=None) -> dict:
        """`updates` updates on demo batches (fewer if `stop` is set) with the policy kept exactly
        as it is: the critics learn the starting policy's values before it meets online data."""
        from serl.agents.warm_start import keep_policy, policy_state

        # on-device copies (same placement: no recompile); the update donates the agent's own
        kept = policy_state(self.agent)
        info = {}
        for _ in range(updates):
            if stop is not None and stop.is_set():
                break
            batch = shard_batch(sample_update_batch(demo, demo, self.agent_cfg, 0, rng), self.mesh)
            with self.clock.phase("update"):
                self.agent, info = self.agent.update(batch, self.trunk)
                self.agent = keep_policy(self.agent, kept)
        return jax.device_get(info)

    def update(self, online: ReplayStorage, demo: ReplayStorage, rng: np.random.Generator,
               prior: ReplayStorage | None = None, hold_policy: bool = False) -> dict:
        """One update; the first call starts the prefetch thread (sampling from these buffers, and
        `prior` at `learner.prior_fraction` when given).
        It returns once the update is done, so the clock's "update" is the update's own time. (One
        update left in flight, so intake overlaps it, measured no faster on 2 cores: 1.49 against
        1.57 updates/s in `bench/learner.py`'s loop, and it hides what the loop costs.) The old
        agent's buffers are donated to the new one."""
        if self._prefetch is None:
            sample = lambda: sample_update_batch(  # noqa: E731
                online, demo, self.agent_cfg, self.cfg.min_demo, rng, prior,
                self.cfg.prior_fraction, self.cfg.min_prior)
            self._prefetch = PrefetchIterator(sample, lambda b: shard_batch(b, self.mesh),
                                              depth=self.cfg.prefetch)
        with self.clock.phase("sampling"):
            batch = next(self._prefetch)
        with self.clock.phase("update"):
            if hold_policy and self._held is None:
                self._held = self._policy_state()
            self.agent, info = self.agent.update(batch, self.trunk)
            if hold_policy:
                from serl.agents.warm_start import keep_policy

                self.agent = keep_policy(self.agent, self._held)
            else:
                self._held = None
            jax.block_until_ready(info)
        return info

    def _policy_state(self) -> dict:
        """What a held policy keeps (`learner.policy_hold_updates`): its actor, temperature and,
        unless it is a residual (whose zero correction does not read it), the shared encoder."""
        from serl.agents.warm_start import policy_state

        return policy_state(self.agent, with_encoder=self.agent_cfg.residual_scale is None)

    def policy_params(self) -> dict:
        """The policy's weights on the host, as published."""
        return jax.device_get(self.agent.policy_params())

    @property
    def skipped_updates(self) -> int:
        return int(self.agent.skipped_updates)

    def stop(self) -> None:
        """End the prefetch thread (a later `update` starts a new one)."""
        if self._prefetch is not None:
            self._prefetch.close()
            self._prefetch = None
