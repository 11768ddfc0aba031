"""The robot control loop through the whole robot path: `FrankaEnv` (ROS 2 image cameras, robot
client) against the real robot server, with the scripted operator acting, on one of two rigs,
launched on a private ROS domain (and, for libfranka, a private loopback FCI address):

- `--adapter sim`: the simulated ROS 2 driver (hardware_configs/sim_panda.yaml);
- `--adapter libfranka`: the libfranka adapter, franky and franky-sim (hardware_configs/
  franky_sim.yaml), exactly the path of a real FR3.

Measures, per control step: the observation's age when the action is published (newest-to-oldest
capture time of state and both frames, to the moment `set_pose` is sent; p50/p99), control-period
jitter (|period - 1/rate|, p99; target <= 10 ms on 2 cores) and the server's request round-trip
(`set_pose`, p50/p99). Then the command-to-motion latency: with the arm held still, one `set_pose`
1 cm along x (repeated every 50 ms, as a client that means it, so the watchdog never holds), and
the time from sending it to the capture time (the state's stamp) of the first measured pose 0.5 mm
(MOTION_M) along the step; alternately +x and -x, so the arm stays where it was.

Prints one JSON line (with the 1-minute load average: other work on the machine shows up as jitter).
Run: `.venv/bin/python bench/robot_loop.py [--adapter sim|libfranka] [--steps N] [--policy-ms MS]
[--image-rate-hz HZ] [--trials N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from header import cpus, load_1m, machine

RIGS = {"sim": "hardware_configs/sim_panda.yaml", "libfranka": "hardware_configs/franky_sim.yaml"}
STEP_M = 0.01  # the latency trial's target step
MOTION_M = 0.005 / 10  # "moving": this far along the step (10x franky-sim's hold noise)
RESEND_S = 0.05  # the trial's target is sent again this often


def percentiles(values, scale: float = 1e3) -> dict[str, float]:
    v = np.asarray(values, np.float64) * scale
    return {"p50": round(float(np.percentile(v, 50)), 2),
            "p99": round(float(np.percentile(v, 99)), 2), "max": round(float(v.max()), 2)}


def command_to_motion(client, trials: int) -> list[float]:
    """Seconds from a `set_pose` 1 cm away to the capture of the first pose MOTION_M toward it
    (module docstring); the arm rests 0.6 s before each trial."""
    latencies = []
    for i in range(trials):
        time.sleep(0.6)  # the watchdog has held the measured pose since the last trial
        start = client.get_state()["tcp_pose"].copy()
        direction = np.array([1.0 if i % 2 == 0 else -1.0, 0.0, 0.0])
        target = start.copy()
        target[:3] += STEP_M * direction
        sent = time.time()
        client.set_pose(target)
        last_sent, moved = time.monotonic(), None
        while moved is None and time.time() - sent < 2.0:
            state = client.get_state()
            if float(np.dot(state["tcp_pose"][:3] - start[:3], direction)) > MOTION_M:
                moved = float(state["stamp"]) - sent
            if time.monotonic() - last_sent > RESEND_S:
                client.set_pose(target)
                last_sent = time.monotonic()
        if moved is not None:
            latencies.append(moved)
        for _ in range(int(0.5 / RESEND_S)):  # settle at the target
            client.set_pose(target)
            time.sleep(RESEND_S)
    return latencies


def run(adapter: str, steps: int, policy_ms: float, image_rate_hz: float | None,
        trials: int) -> dict:
    import yaml

    from robot_servers.launch import launch_sim_rig
    from serl.devices.scripted import ScriptedOperator
    from serl.envs.franka_env import make_franka_env
    from serl.envs.stack import make_policy_env

    with open(RIGS[adapter]) as f:
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
            episode_step, hold = 0, np.zeros(env.action_space.shape, np.float32)
            for _ in range(steps):
                if policy_ms > 0:
                    # stands in for policy inference between observation and action
                    time.sleep(policy_ms / 1e3)
                _, _, terminated, truncated, _ = env.step(hold)
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
            env.reset()  # the trials start at the reset pose, well inside the box
            latencies = command_to_motion(raw.client, trials)
        finally:
            env.close()
    jitter = np.abs(np.asarray(periods) - period)
    return {"adapter": adapter, "rig": RIGS[adapter], "image_rate_hz": rig.config.sim.image_rate_hz,
            "obs_age_at_publish_ms": percentiles(ages), "period_jitter_ms": percentiles(jitter),
            "server_rtt_ms": percentiles(rtts), "overruns": overruns,
            "control_hz": round(1 / period, 2),
            "command_to_motion_ms": percentiles(latencies) if latencies else None,
            "motion_trials": f"{len(latencies)}/{trials}", "motion_threshold_mm": MOTION_M * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapter", choices=sorted(RIGS), default="sim",
                        help="sim: the simulated ROS 2 driver; libfranka: franky-sim via franky")
    parser.add_argument("--steps", type=int, default=300, help="control steps (10 Hz: 30 s)")
    parser.add_argument("--policy-ms", type=float, default=2.0,
                        help="simulated policy time per step")
    parser.add_argument("--image-rate-hz", type=float, default=None,
                        help="camera rate (default: the rig's, 10)")
    parser.add_argument("--trials", type=int, default=10, help="command-to-motion trials")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    result = run(args.adapter, args.steps, args.policy_ms, args.image_rate_hz, args.trials)
    print(json.dumps({"bench": "robot_loop", "steps": args.steps, "policy_ms": args.policy_ms,
                      **result, "target_jitter_p99_ms": 10.0, "cores": cpus(),
                      "machine": machine(), "load_avg_1m_at_end": load_1m(1)}))


if __name__ == "__main__":
    main()
