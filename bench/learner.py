"""Learner update speed in the configuration DESIGN.md fixes for the comparison with the peers.

Batch 256, cameras `front` + `wrist` 128x128x3 uint8, 19-D float32 state, 7-D action, the hybrid
agent (SAC on the arm + double-DQN grasp critic), 2 layer-normed critics, critic-to-actor ratio 2.
One "update" is one call of the jitted `HybridAgent.update` = one critic-only minibatch + one full
minibatch (critic, actor, temperature, grasp), which is what the peers call a learner step. Random
data, placed on the device once.

Variants (`--variants`):
- `small`: the small conv trained end to end (augmentation on the frames);
- `resnet10_frozen`: ResNet-10 with a frozen (random, fine for timing) trunk run on every frame of
  every update;
- `resnet10_cached[_bf16|_f16]`: the same, with the batch carrying cached trunk features
  (`front_features`/`wrist_features`, 4x4x512, float32 / bfloat16 / float16) instead of the frames.

Each variant runs in a fresh child process, so its compile time and peak memory are its own. Per
variant: AOT compile time, median seconds per update over `--updates` timed updates after `--warmup`
(`block_until_ready`), updates and critic updates per second, FLOPs per update (XLA cost analysis)
and achieved FLOP/s, peak memory (ru_maxrss on CPU, the device's peak_bytes_in_use where it reports
one). The frozen trunk is an argument of the update, not part of the agent, and the agent's buffers
are donated, as in the learner.

`loop` (unless `--loop-seconds 0`): the whole learner loop over the cached ResNet-10 for
`--loop-seconds` after its first update (`bench/learner_loop.py`): its updates per second, the
share of its wall time outside `update` (sampling, intake with the feature cache, the actors'
reports, publishing, bookkeeping; target <= 15%) and which part dominates, beside the bare update
rate of the same compiled update. The loop's figures depend on the CPU being free: `loadavg_1m_*`
says whether it was.

Prints one JSON line; progress goes to stderr.

Run (CPU): `JAX_PLATFORMS=cpu .venv/bin/python bench/learner.py [--variants small resnet10_cached]
[--updates 3]`; smallest: `--variants resnet10_cached --updates 1 --loop-seconds 10 --loop-batch 32
--loop-prefill 64`. The same command runs on a GPU without JAX_PLATFORMS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from header import jax_fields, load_1m, run_footer

# DESIGN.md "Speed": hil-serl's learner, frozen ResNet-10, 2-core CPU
PEER_HIL_SERL_S_PER_STEP = 15.1
PEER_LEROBOT_S_PER_STEP = 3.8  # LeRobot's SAC, 2.7 s full + 1.1 s critic-only
TARGET_SPEEDUP = 10.0  # "our aim: >= 10x both"

BATCH, CAMERA, STATE_DIM, ACTION_DIM, RATIO, ENSEMBLE = 256, 128, 19, 7, 2, 2
CAMERAS = ("front", "wrist")
FEATURE_DTYPES = {"resnet10_cached": "float32", "resnet10_cached_bf16": "bfloat16",
                  "resnet10_cached_f16": "float16"}
VARIANTS = ("small", "resnet10_frozen", *FEATURE_DTYPES)
DEFAULT_VARIANTS = ("small", "resnet10_frozen", "resnet10_cached", "resnet10_cached_bf16")


def log(msg: str) -> None:
    print(f"[learner bench] {msg}", file=sys.stderr, flush=True)


def flops_of(compiled) -> float | None:
    """FLOPs from `Compiled.cost_analysis()`, which is a dict, a list of per-module dicts, or None
    by JAX version."""
    try:
        cost = compiled.cost_analysis()
    except Exception as e:  # some backends do not implement it
        log(f"cost_analysis unavailable: {e!r}")
        return None
    if cost is None:
        return None
    if isinstance(cost, dict):
        cost = [cost]
    total = sum(float(c.get("flops", 0.0)) for c in cost if c)
    return total or None


def memory_analysis_of(compiled) -> dict:
    try:
        m = compiled.memory_analysis()
    except Exception:
        return {}
    if m is None:
        return {}
    out = {}
    for name in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes"):
        value = getattr(m, name, None)
        if value is not None:
            out[name.replace("_in_bytes", "_mb")] = round(value / 2**20, 1)
    return out


def peak_memory(device) -> dict:
    # Linux: KiB
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    try:
        stats = device.memory_stats()
    except Exception:
        stats = None
    if stats and "peak_bytes_in_use" in stats:
        out["peak_device_mb"] = round(stats["peak_bytes_in_use"] / 2**20, 1)
    return out


def make_batch(variant: str, seed: int, feature_shape: tuple[int, ...],
               batch: int = BATCH):
    """Host-side random batch, leaves shaped (ratio, batch, ...)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lead = (RATIO, batch)

    def obs():
        o = {"state": rng.standard_normal((*lead, STATE_DIM), dtype=np.float32)}
        for cam in CAMERAS:
            if variant in FEATURE_DTYPES:
                o[cam + "_features"] = rng.standard_normal((*lead, *feature_shape),
                                                           dtype=np.float32)
            else:
                o[cam] = rng.integers(0, 256, (*lead, CAMERA, CAMERA, 3), dtype=np.uint8)
        return o

    return {
        "observations": obs(),
        "next_observations": obs(),
        "actions": rng.uniform(-1, 1, (*lead, ACTION_DIM)).astype(np.float32),
        "rewards": rng.standard_normal(lead, dtype=np.float32),
        "masks": (rng.random(lead) > 0.05).astype(np.float32),
        "grasp_penalty": np.where(rng.random(lead) > 0.8, -0.02, 0.0).astype(np.float32),
    }


def run_variant(variant: str, args) -> dict:
    """Runs in its own process."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from serl.agents.config import SACConfig
    from serl.agents.hybrid import HybridAgent
    from serl.networks.config import EncoderConfig
    from serl.networks.observation_encoder import trunk_feature_shape
    from serl.networks.trunk import frozen_trunk

    device = jax.devices()[0]
    trunk = "small" if variant == "small" else "resnet10"
    encoder = EncoderConfig(image_keys=CAMERAS, trunk=trunk, frozen_trunk=trunk == "resnet10",
                            random_frozen_trunk=trunk == "resnet10",
                            num_spatial_features=args.spatial_features,
                            bottleneck_dim=args.bottleneck_dim)
    # cached features cannot be cropped: no augmentation for those variants (as the config says)
    cfg = SACConfig(encoder=encoder, critic_ensemble_size=args.ensemble, critic_actor_ratio=RATIO,
                    batch_size=args.batch, grasp_critic=True,
                    augment_pad=0 if variant in FEATURE_DTYPES else 4)
    example = {"state": np.zeros(STATE_DIM, np.float32),
               **{cam: np.zeros((CAMERA, CAMERA, 3), np.uint8) for cam in CAMERAS}}

    t0 = time.perf_counter()
    agent = HybridAgent.create(jax.random.PRNGKey(args.seed), example, ACTION_DIM, cfg)
    jax.block_until_ready(agent)
    create_s = time.perf_counter() - t0
    log(f"{variant}: agent created in {create_s:.1f} s")

    # the frozen trunk: a constant beside the agent, needed by updates on frames only
    trunk_params = None
    if variant == "resnet10_frozen":
        trunk_params = jax.device_put(frozen_trunk(encoder))
    feature_shape = ()
    if variant in FEATURE_DTYPES:
        feature_shape = tuple(trunk_feature_shape(encoder, (CAMERA, CAMERA, 3)))
    host = make_batch(variant, args.seed, feature_shape, args.batch)
    if variant in FEATURE_DTYPES:
        dtype = jnp.dtype(FEATURE_DTYPES[variant])
        for field in ("observations", "next_observations"):
            for cam in CAMERAS:
                key = cam + "_features"
                host[field][key] = np.asarray(host[field][key]).astype(dtype)
    batch = jax.device_put(host, device)
    jax.block_until_ready(batch)
    del host
    batch_mb = sum(x.nbytes for x in jax.tree.leaves(batch)) / 2**20

    t0 = time.perf_counter()
    lowered = type(agent).update.lower(agent, batch, trunk_params)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    log(f"{variant}: traced in {lower_s:.1f} s, compiled in {compile_s:.1f} s")
    flops = flops_of(compiled)
    hlo = compiled.as_text() or ""
    # XLA may count a loop body once, whatever its trip count
    has_loop = "while(" in hlo or " while " in hlo

    # The budget covers warm-up and timed updates; at least one warm-up (if asked for) and one timed
    # update run.
    budget = args.variant_budget_s
    deadline = time.perf_counter() + budget if budget else float("inf")
    warmup_s: list[float] = []
    while len(warmup_s) < args.warmup and (not warmup_s or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        agent, info = compiled(agent, batch, trunk_params)
        jax.block_until_ready((agent, info))
        warmup_s.append(time.perf_counter() - t0)
        log(f"{variant}: warm-up {len(warmup_s)}/{args.warmup}: {warmup_s[-1]:.3f} s")

    times: list[float] = []
    while len(times) < args.updates and (not times or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        agent, info = compiled(agent, batch, trunk_params)
        jax.block_until_ready((agent, info))
        times.append(time.perf_counter() - t0)
    if len(times) < args.updates:
        log(
            f"{variant}: only {len(times)} timed updates fit --variant-budget-s "
            f"{args.variant_budget_s}"
        )
    log(f"{variant}: timed updates {[round(t, 4) for t in times]}")

    median = statistics.median(times)
    out = {
        "trunk": trunk,
        "trunk_trained": trunk == "small",
        "head": {"spatial_features": args.spatial_features, "bottleneck_dim": args.bottleneck_dim},
        "batch": args.batch, "critics": args.ensemble,
        "inputs": (
            "cached features " + str(list(feature_shape)) + " " + FEATURE_DTYPES[variant]
            if variant in FEATURE_DTYPES
            else "uint8 frames 128x128x3"
        ),
        "batch_on_device_mb": round(batch_mb, 1),
        "create_s": round(create_s, 2),
        "trace_s": round(lower_s, 2),
        "compile_s": round(compile_s, 2),
        "first_update_s": round(warmup_s[0], 3) if warmup_s else None,
        "warmup_updates": len(warmup_s),
        "timed_updates": len(times),
        "s_per_update_median": round(median, 5),
        "s_per_update_min": round(min(times), 5),
        "s_per_update_max": round(max(times), 5),
        "updates_per_s": round(1.0 / median, 3),
        "critic_updates_per_s": round(RATIO / median, 3),
        "flops_per_update": flops,
        "achieved_gflop_per_s": round(flops / median / 1e9, 2) if flops else None,
        "flops_counted_in_loop": has_loop,
        "speedup_vs_hil_serl": round(PEER_HIL_SERL_S_PER_STEP / median, 1),
        "speedup_vs_lerobot": round(PEER_LEROBOT_S_PER_STEP / median, 1),
        "meets_10x_both": bool(
            min(PEER_HIL_SERL_S_PER_STEP, PEER_LEROBOT_S_PER_STEP) / median >= TARGET_SPEEDUP
        ),
        "update_ok_last": float(info["update_ok"]),
        "skipped_updates": int(agent.skipped_updates),
        **memory_analysis_of(compiled),
        **peak_memory(device),
    }
    return out


def run_child(flags: list[str], what: str) -> dict:
    """This script in a fresh process with `flags`: its last JSON line, or an error entry."""
    cmd = [sys.executable, os.path.abspath(__file__), *flags]
    # the child's stderr passes through
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        log(f"{what}: worker failed with exit status {proc.returncode}")
        return {"error": f"worker exited with {proc.returncode}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(DEFAULT_VARIANTS))
    parser.add_argument(
        "--updates", type=int, default=3, help="timed updates per variant (median reported)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates after compiling")
    parser.add_argument(
        "--variant-budget-s",
        type=float,
        default=90.0,
        help="seconds of warm-up + timed updates per variant, after compiling; at least one of "
        "each still runs; 0: no limit",
    )
    parser.add_argument("--seed", type=int, default=0)
    # the trainable head on each camera's trunk features, and the batch (DESIGN's comparison: the
    # defaults)
    parser.add_argument("--spatial-features", type=int, default=8)
    parser.add_argument("--bottleneck-dim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--ensemble", type=int, default=ENSEMBLE, help="critics")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the variants in this process (peak memory and compile caches then overlap)",
    )
    parser.add_argument("--loop-seconds", type=float, default=60.0,
                        help="seconds of the whole learner loop after its first update; 0: skip")
    parser.add_argument("--loop-batch", type=int, default=BATCH, help="the loop's batch size")
    parser.add_argument("--loop-prefill", type=int, default=500,
                        help="transitions stored before the loop's first update (min_online)")
    parser.add_argument("--loop-actor-hz", type=float, default=10.0,
                        help="transitions per second the stand-in actor adds during the loop")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--loop-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_variant(args.worker, args)), flush=True)
        return
    if args.loop_worker:
        from learner_loop import run_loop

        print(json.dumps(run_loop(args)), flush=True)
        return

    started = time.perf_counter()
    load_start = load_1m()
    results: dict[str, dict] = {}
    common = ["--updates", str(args.updates), "--warmup", str(args.warmup), "--variant-budget-s",
              str(args.variant_budget_s), "--seed", str(args.seed), "--spatial-features",
              str(args.spatial_features), "--bottleneck-dim", str(args.bottleneck_dim), "--batch",
              str(args.batch), "--ensemble", str(args.ensemble)]
    for variant in args.variants:
        log(f"--- {variant}")
        if args.in_process:
            results[variant] = run_variant(variant, args)
            continue
        results[variant] = run_child(["--worker", variant, *common], variant)
    loop = None
    if args.loop_seconds > 0:
        log("--- the learner loop (resnet10, feature cache)")
        loop = run_child(["--loop-worker", *common, "--loop-seconds", str(args.loop_seconds),
                          "--loop-batch", str(args.loop_batch), "--loop-prefill",
                          str(args.loop_prefill), "--loop-actor-hz", str(args.loop_actor_hz)],
                         "loop")
        if "outside_update_fraction" in loop:
            log(f"loop: {loop['loop_updates_per_s']} updates/s against "
                f"{loop['bare_updates_per_s']} bare; outside update "
                f"{100 * loop['outside_update_fraction']:.0f}% (most: "
                f"{loop['dominant_outside_update']})")

    print(
        json.dumps(
            {
                "bench": "learner",
                **jax_fields(),
                "config": {
                    "batch_size": args.batch,
                    "cameras": list(CAMERAS),
                    "image": [CAMERA, CAMERA, 3],
                    "state_dim": STATE_DIM,
                    "action_dim": ACTION_DIM,
                    "agent": "hybrid (grasp_critic=True)",
                    "critic_ensemble": args.ensemble,
                    "critic_actor_ratio": RATIO,
                    "update": "critic-only + full (critic, actor, temperature, grasp)",
                    "warmup": args.warmup,
                    "updates": args.updates,
                },
                "peer_hil_serl_s_per_step": PEER_HIL_SERL_S_PER_STEP,
                "peer_lerobot_s_per_step": PEER_LEROBOT_S_PER_STEP,
                "target_speedup_vs_both": TARGET_SPEEDUP,
                "variants": results,
                "loop": loop,
                **run_footer(load_start, started),
            }
        )
    )


if __name__ == "__main__":
    main()
