"""The robot control loop through the whole robot path: `FrankaEnv` (ROS 2 image cameras, robot
client) against the simulated driver and the real robot server, launched on a private ROS domain,
with the scripted operator acting.

Measures, per control step: the observation's age when the action is published (newest-to-oldest
capture time of state and both frames, to the moment `set_pose` is sent; p50/p99), control-period
jitter (|period - 1/rate|, p99; target <= 10 ms on 2 cores) and the server's request round-trip
(`set_pose`, p50/p99).

Prints one JSON line (with the 1-minute load average: other work on the machine shows up as jitter).
Run: `.venv/bin/python bench/robot_loop.py [--steps N] [--policy-ms MS] [--image-rate-hz HZ]`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from header import cpus, load_1m, machine


def percentiles(values, scale: float = 1e3) -> dict[str, float]:
    v = np.asarray(values, np.float64) * scale
    return {"p50": round(float(np.percentile(v, 50)), 2),
            "p99": round(float(np.percentile(v, 99)), 2), "max": round(float(v.max()), 2)}


def run(steps: int, policy_ms: float, image_rate_hz: float | None) -> dict:
    import yaml

    from robot_servers.launch import launch_sim_rig
    from serl.devices.scripted import ScriptedOperator
    from serl.envs.franka_env import make_franka_env
    from serl.envs.stack import make_policy_env

    with open("hardware_configs/sim_panda.yaml") as f:
        rig_file = yaml.safe_load(f)
    # a real camera runs at 30 fps; the simulated rig's default is 10 Hz
    if image_rate_hz is not None:
        rig_file["sim"]["image_rate_hz"] = image_rate_hz
    ages, periods, rtts = [], [], []
    with launch_sim_rig(rig_file) as rig:
        raw = make_franka_env(hardware_config=str(rig.config_path), ros_domain_id=rig.domain_id)
        env = make_policy_env(raw, device=ScriptedOperator(raw, seed=0))
        try:
            env.reset(seed=0)
            episode_step = 0
            for _ in range(steps):
                if policy_ms > 0:
                    # stands in for policy inference between observation and action
                    time.sleep(policy_ms / 1e3)
                _, _, terminated, truncated, _ = env.step(np.zeros(7, np.float32))
                episode_step += 1
                ages.append(raw.loop["obs_age_s"])
                rtts.append(raw.loop["rtt_s"])
                # the first period after a reset starts at the reset, not at a step
                if episode_step > 1:
                    periods.append(raw.loop["period_s"])
                if terminated or truncated:
                    env.reset()
                    episode_step = 0
            overruns, period = raw.overruns, raw.period
        finally:
            env.close()
    jitter = np.abs(np.asarray(periods) - period)
    return {"image_rate_hz": rig.config.sim.image_rate_hz,
            "obs_age_at_publish_ms": percentiles(ages), "period_jitter_ms": percentiles(jitter),
            "server_rtt_ms": percentiles(rtts), "overruns": overruns,
            "control_hz": round(1 / period, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="control steps (10 Hz: 30 s)")
    parser.add_argument("--policy-ms", type=float, default=2.0,
                        help="simulated policy time per step")
    parser.add_argument("--image-rate-hz", type=float, default=None,
                        help="camera rate (default: the rig's, 10)")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    result = run(args.steps, args.policy_ms, args.image_rate_hz)
    print(json.dumps({"bench": "robot_loop", "steps": args.steps, "policy_ms": args.policy_ms,
                      **result, "target_jitter_p99_ms": 10.0, "cores": cpus(),
                      "machine": machine(), "load_avg_1m_at_end": load_1m(1)}))


if __name__ == "__main__":
    main()
