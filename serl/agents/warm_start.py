"""Warm start: an RL agent whose policy starts as a base policy file's (`serl train-bc`), and the
offline critic pre-training on the demonstrations that comes before its first online update.

The file's `policy_params()` tree (encoder, actor and, for the hybrid agent, the grasp critic) must
have exactly the run's layout (`agent.hidden_dims`, encoder, grasp critic: train the base with the
run's agent config); the critics' own heads start fresh and learn the base's values on the demos
while the policy (actor, encoder, a hybrid's grasp critic) stays the base's (`keep_policy`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from serl.agents.hybrid import HybridAgent


def layout_difference(ours: dict, theirs: dict) -> str | None:
    """The first leaf path whose presence or shape differs between two trees, or None (a policy
    file stores float32 leaves; they are cast to the agent's float32 on loading)."""
    from flax.traverse_util import flatten_dict

    a, b = flatten_dict(ours, sep="/"), flatten_dict(theirs, sep="/")
    for path in sorted(set(a) | set(b)):
        if path not in a or path not in b:
            return f"{path} is {'missing from the file' if path not in b else 'not in the run'}"
        if np.shape(a[path]) != np.shape(b[path]):
            return f"{path}: the file's {np.shape(b[path])}, the run's {np.shape(a[path])}"
    return None


def _fresh(tree):
    return jax.tree.map(lambda x: jnp.array(x, jnp.float32), tree)


def with_policy(agent, params: dict):
    """`agent` acting as `params` (a `policy_params()` tree of its layout): the actor, the shared
    encoder (critic and target) and a hybrid agent's grasp critic (and its target)."""
    def sac_with(sac):
        return sac.replace(
            actor=sac.actor.replace(params=_fresh(params["actor"])),
            critic=sac.critic.replace(params={**sac.critic.params,
                                              "encoder": _fresh(params["encoder"])}),
            target_critic_params={**sac.target_critic_params,
                                  "encoder": _fresh(params["encoder"])})

    if isinstance(agent, HybridAgent):
        return agent.replace(sac=sac_with(agent.sac), grasp=agent.grasp.replace(
            params=_fresh(params["grasp"])), grasp_target_params=_fresh(params["grasp"]))
    return sac_with(agent)


def policy_state(agent, with_encoder: bool = True) -> dict:
    """On-device copies of what `keep_policy` puts back: the actor's and temperature's train
    states, the shared encoder (unless `with_encoder` is False: a residual's zero correction does
    not depend on it, so the critics may train it) and a hybrid agent's grasp critic."""
    sac = agent.sac if isinstance(agent, HybridAgent) else agent
    kept = {"actor": sac.actor, "temperature": sac.temperature}
    if with_encoder:
        kept["encoder"] = sac.critic.params["encoder"]
    if isinstance(agent, HybridAgent):
        kept["grasp"] = agent.grasp
    return jax.tree.map(jnp.copy, kept)


def keep_policy(agent, kept: dict):
    """`agent` after an update with `policy_state`'s parts put back as they were (critic
    pre-training: the policy whose values the critics learn stays exactly the starting one)."""
    sac = agent.sac if isinstance(agent, HybridAgent) else agent
    kept = jax.tree.map(jnp.copy, kept)  # fresh buffers: the next update donates these
    sac = sac.replace(actor=kept["actor"], temperature=kept["temperature"])
    if "encoder" in kept:
        sac = sac.replace(
            critic=sac.critic.replace(params={**sac.critic.params, "encoder": kept["encoder"]}),
            target_critic_params={**sac.target_critic_params,
                                  "encoder": jax.tree.map(jnp.copy, kept["encoder"])})
    if isinstance(agent, HybridAgent):
        return agent.replace(sac=sac, grasp=kept["grasp"],
                             grasp_target_params=jax.tree.map(jnp.copy, kept["grasp"].params))
    return sac
