"""A base policy for RL to improve on: a policy file's deterministic policy (`serl train-bc`), or
one served by another process (`serl.serving`), called on each observation the env gives
(`serl.envs.base_action.BaseActionWrapper`) and on the demonstrations the learner loads
(`annotate`), never on sampled batches: transitions carry the base's action for their observation
and next observation (`BASE_ACTION_KEY`).

The base sees the observation without its own entry, as it was trained. Its action is checked
(shape, finite, in [-1, 1]); a base that breaks its contract or does not answer raises
`BasePolicyError`, and nothing is sent for that observation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from serl.data.schema import TransitionSpec
from serl.envs.base_action import BasePolicyError, checked_action
from serl.envs.contract import BASE_ACTION_KEY, policy_spaces

__all__ = ["BasePolicyError", "FileBasePolicy", "LazyBase", "annotate", "base_identity",
           "checked_action", "open_base", "spec_without_base", "without_base"]


def without_base(config):
    """`config` as the base policy was trained for: no base entry, no residual."""
    return dataclasses.replace(
        config, wrappers=dataclasses.replace(config.wrappers, base_policy=""),
        agent=dataclasses.replace(config.agent, residual_scale=None))


def spec_without_base(spec: TransitionSpec) -> TransitionSpec:
    """`spec` without the base action entry (what demonstrations recorded without a base hold)."""
    return TransitionSpec({k: (s, d) for k, s, d in spec.observations if k != BASE_ACTION_KEY},
                          spec.action_dim)


class FileBasePolicy:
    """The deterministic policy of the policy file at `path`, checked against `config` (the run's
    task config: the file must see and act as its policy does without the base entry)."""

    def __init__(self, path: str | Path, config):
        import jax

        from serl.agents.policy_file import check_task, load_policy

        policy = load_policy(path)
        check_task(policy, without_base(config), "this run's task")
        self.path, self.identity, self.action_dim = Path(path), policy.identity, policy.action_dim
        self._evaluate = policy.policy_function()
        self._params = jax.device_put(policy.params)

    def __call__(self, obs: dict) -> np.ndarray:
        """The base's action for one observation or a batch (`BASE_ACTION_KEY` ignored)."""
        obs = {k: v for k, v in obs.items() if k != BASE_ACTION_KEY}
        return checked_action(self._evaluate(self._params, obs), self.action_dim)

    def close(self) -> None:
        """Nothing to release (a served base closes its socket)."""


def annotate(batches: dict[str, dict], base, chunk: int = 256) -> dict[str, dict]:
    """Episode batches (by name) with the base's actions for their observations and next
    observations. All episodes' observations are asked for together, in chunks of `chunk` (the
    last padded: one compiled shape), so short episodes cost no padding each: 20 peg demos of ~18
    steps, one chunk per episode and field, took 40 chunks where 3 suffice."""
    names = list(batches)
    out = {name: dict(batches[name]) for name in names}
    for field in ("observations", "next_observations"):
        sizes = [len(next(iter(batches[n][field].values()))) for n in names]
        if not sum(sizes):
            continue
        joined = {k: np.concatenate([batches[n][field][k] for n in names])
                  for k in batches[names[0]][field]}
        actions = np.split(base_actions(joined, base, chunk), np.cumsum(sizes)[:-1])
        for name, part in zip(names, actions, strict=True):
            out[name][field] = {**batches[name][field], BASE_ACTION_KEY: part}
    return out


def base_actions(obs: dict, base, chunk: int) -> np.ndarray:
    """The base's float32 actions for a batch of observations, in padded chunks of `chunk`."""
    n = len(next(iter(obs.values())))
    actions = []
    for i in range(0, n, chunk):
        part = {k: v[i:i + chunk] for k, v in obs.items()}
        size = len(next(iter(part.values())))
        padded = {k: np.concatenate([v, np.repeat(v[-1:], chunk - size, axis=0)])
                  for k, v in part.items()}
        actions.append(base(padded)[:size])
    return np.concatenate(actions).astype(np.float32)


def is_served(base_policy: str) -> bool:
    """`wrappers.base_policy` names a served base (tcp://host:port), not a file."""
    return base_policy.startswith("tcp://")


def open_base(config):
    """The base policy `config.wrappers.base_policy` names: a `FileBasePolicy`, or a
    `ServedBasePolicy` connected to its server (BasePolicyError if it refuses or is silent)."""
    w = config.wrappers
    if not is_served(w.base_policy):
        return FileBasePolicy(w.base_policy, config)
    from serl.serving.client import ServedBasePolicy
    from serl.transport.keys import ActorCurve

    curve = None
    if config.transport.curve_keys:  # the actor's own key, as for the learner
        curve = ActorCurve.for_actor(Path(config.transport.curve_keys) / "actor",
                                     config.actor.actor_id)
    spec = TransitionSpec.from_spaces(*policy_spaces(config.env, config.wrappers))
    return ServedBasePolicy(w.base_policy, spec_without_base(spec),
                            deadline_s=w.base_deadline_ms / 1000.0, curve=curve)


class LazyBase:
    """`open_base(config)`, opened at its first call (the learner needs the base only for demos
    recorded without it: most runs never connect)."""

    def __init__(self, config):
        self.config, self._base = config, None

    def __call__(self, obs: dict) -> np.ndarray:
        if self._base is None:
            self._base = open_base(self.config)
        return self._base(obs)

    def close(self) -> None:
        if self._base is not None:
            self._base.close()


def base_identity(config) -> str:
    """The identity of `config`'s base policy (what runs and handshakes compare): a file's from
    its header alone, a served one's from its server's welcome."""
    base_policy = config.wrappers.base_policy
    if not is_served(base_policy):
        from serl.agents.policy_file import read_header

        return str(read_header(base_policy)[0].get("identity", "unknown"))
    base = open_base(config)
    try:
        return base.identity
    finally:
        base.close()
