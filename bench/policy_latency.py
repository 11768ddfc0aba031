"""Batch-1 policy inference latency, as an actor sees it: host observation -> action.

Two 128x128x3 uint8 cameras (`front`, `wrist`) + 19-D float32 state, the hybrid 7-D action
(`serl.agents.hybrid.sample_actions` on `policy_params()`, already on the device). Each timed call
covers `jax.device_put` of the host observation, `sample_actions`, `block_until_ready` and the copy
of the action back to the host; random keys are split beforehand (outside the timing). p50/p90/p99
over `--calls` calls after `--warmup`. Encoders: `small` and `resnet10` with a frozen (random)
trunk. Also reports `eval_actions` latency, the FLOPs of one call, and whether anything recompiled
during the timed calls. Prints one JSON line; progress goes to stderr.

Run (CPU): `JAX_PLATFORMS=cpu .venv/bin/python bench/policy_latency.py [--calls 300] [--encoders
small resnet10]`. The same command runs on a GPU without JAX_PLATFORMS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from header import jax_fields, load_1m, run_footer

CAMERA, STATE_DIM, ACTION_DIM = 128, 19, 7
CAMERAS = ("front", "wrist")
TARGET_P99_MS = {"small": 2.0, "resnet10": 15.0}  # DESIGN.md "Speed"
PEER_HIL_SERL_P99_MS = 20.2
PEER_LEROBOT_P99_MS = 2.4


def log(msg: str) -> None:
    print(f"[policy latency] {msg}", file=sys.stderr, flush=True)


def percentiles(samples_s: list[float]) -> dict:
    import numpy as np

    ms = np.asarray(samples_s) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def flops_of(fn, *args, **kwargs) -> float | None:
    try:
        cost = fn.lower(*args, **kwargs).compile().cost_analysis()
    except Exception as e:
        log(f"cost_analysis unavailable: {e!r}")
        return None
    if cost is None:
        return None
    if isinstance(cost, dict):
        cost = [cost]
    return sum(float(c.get("flops", 0.0)) for c in cost if c) or None


def cache_size(fn) -> int | None:
    try:
        return int(fn._cache_size())
    except Exception:
        return None


def time_calls(call, observations: list[dict], n: int, warmup: int) -> list[float]:
    for i in range(warmup):
        call(observations[i % len(observations)], i)
    out = []
    for i in range(n):
        obs = observations[i % len(observations)]
        t0 = time.perf_counter()
        call(obs, warmup + i)
        out.append(time.perf_counter() - t0)
    return out


def run_encoder(trunk: str, args) -> dict:
    import jax
    import numpy as np

    from serl.agents import hybrid, sac
    from serl.agents.hybrid import HybridAgent
    from serl.networks.config import EncoderConfig
    from serl.networks.trunk import frozen_trunk

    encoder = EncoderConfig(image_keys=CAMERAS, trunk=trunk, frozen_trunk=trunk == "resnet10",
                            random_frozen_trunk=trunk == "resnet10")
    cfg = sac.SACConfig(encoder=encoder, grasp_critic=True)
    example = {"state": np.zeros(STATE_DIM, np.float32),
               **{cam: np.zeros((CAMERA, CAMERA, 3), np.uint8) for cam in CAMERAS}}
    t0 = time.perf_counter()
    agent = HybridAgent.create(jax.random.PRNGKey(args.seed), example, ACTION_DIM, cfg)
    params = jax.device_put(agent.policy_params())
    # the frozen trunk is not in the published weights: the actor builds it from its config
    trunk = None if frozen_trunk(encoder) is None else jax.device_put(frozen_trunk(encoder))
    jax.block_until_ready((params, trunk))
    create_s = time.perf_counter() - t0
    del agent

    rng = np.random.default_rng(args.seed)
    observations = [{"state": rng.standard_normal(STATE_DIM, dtype=np.float32),
                     **{cam: rng.integers(0, 256, (CAMERA, CAMERA, 3),
                                          dtype=np.uint8) for cam in CAMERAS}} for _ in range(16)]
    keys = list(jax.random.split(jax.random.PRNGKey(args.seed + 1), args.warmup + args.calls))
    jax.block_until_ready(keys)

    def sample(obs, i):
        action = hybrid.sample_actions(params, jax.device_put(obs), keys[i], cfg=cfg,
                                       arm_dims=ACTION_DIM - 1, trunk=trunk)
        return np.asarray(jax.block_until_ready(action))

    def evaluate(obs, i):
        action = hybrid.eval_actions(params, jax.device_put(obs), cfg=cfg,
                                     arm_dims=ACTION_DIM - 1, trunk=trunk)
        return np.asarray(jax.block_until_ready(action))

    t0 = time.perf_counter()
    first = sample(observations[0], 0)
    first_call_s = time.perf_counter() - t0
    assert first.shape == (ACTION_DIM,) and np.all(np.abs(first) <= 1), first
    before = cache_size(hybrid.sample_actions)
    sample_s = time_calls(sample, observations, args.calls, args.warmup)
    recompiled = None if before is None else cache_size(hybrid.sample_actions) != before
    log(f"{trunk}: sample_actions {percentiles(sample_s)}")

    out = {"create_s": round(create_s, 2), "first_call_s": round(first_call_s, 2),
           "sample_actions": percentiles(sample_s), "recompiled_during_timing": recompiled}
    if not args.no_eval:
        evaluate(observations[0], 0)
        eval_s = time_calls(evaluate, observations, args.calls, args.warmup)
        out["eval_actions"] = percentiles(eval_s)
        log(f"{trunk}: eval_actions {out['eval_actions']}")

    obs_dev = jax.device_put(observations[0])
    flops = flops_of(hybrid.sample_actions, params, obs_dev, keys[0], cfg=cfg,
                     arm_dims=ACTION_DIM - 1, trunk=trunk)
    # The arm's SAC policy alone: if the hybrid call costs ~2x this, the encoder runs twice per
    # call.
    arm_flops = flops_of(sac.sample_actions, params, obs_dev, keys[0], cfg=cfg,
                         action_dim=ACTION_DIM - 1, trunk=trunk)
    target = TARGET_P99_MS[trunk]
    out.update({
        "flops_per_call": flops, "arm_policy_only_flops": arm_flops,
        "target_p99_ms": target, "meets_target": out["sample_actions"]["p99_ms"] <= target,
        "vs_peer_hil_serl_p99": round(PEER_HIL_SERL_P99_MS / out["sample_actions"]["p99_ms"], 2),
        "vs_peer_lerobot_p99": round(PEER_LEROBOT_P99_MS / out["sample_actions"]["p99_ms"], 2),
    })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", choices=tuple(TARGET_P99_MS),
                        default=list(TARGET_P99_MS))
    parser.add_argument("--calls", type=int, default=300, help="timed calls per encoder")
    parser.add_argument("--warmup", type=int, default=30,
                        help="untimed calls after the first (compiling) call")
    parser.add_argument("--no-eval", action="store_true", help="skip the eval_actions measurement")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    load_start = load_1m()
    results = {}
    for trunk in args.encoders:
        log(f"--- {trunk}")
        results[trunk] = run_encoder(trunk, args)
    print(
        json.dumps(
            {
                "bench": "policy_latency",
                **jax_fields(),
                "config": {
                    "cameras": list(CAMERAS),
                    "image": [CAMERA, CAMERA, 3],
                    "state_dim": STATE_DIM,
                    "action_dim": ACTION_DIM,
                    "batch": 1,
                    "agent": "hybrid",
                    "calls": args.calls,
                    "warmup": args.warmup,
                    "timed": "device_put(obs) + sample_actions + block_until_ready"
                    " + action to host",
                },
                "peer_hil_serl_p99_ms": PEER_HIL_SERL_P99_MS,
                "peer_lerobot_p99_ms": PEER_LEROBOT_P99_MS,
                "encoders": results,
                **run_footer(load_start, started),
            }
        )
    )


if __name__ == "__main__":
    main()
