"""What the operator's dashboard costs the actor: the actor loop's time per env step with the
dashboard fed and a headless Chromium showing the page (frames, events), against the same loop
with no dashboard, in alternating blocks of the same actor on the same env (resets excluded).

By default the env runs unpaced (as fast as the CPU allows): the browser then competes with a loop
that never waits, an upper bound. `--paced` runs it at its control rate, as a rig does; then the
loop's own work per step (outside `env.step`, which sleeps) is the figure that matters. Also
reports the feed's own time per step on the actor's thread (`DashboardFeed.seconds`) and the CPU
the browser and the dashboard's server use per step. Weights are
the policy's template (zeros: the same compute as trained weights); the transport is in-process,
drained between episodes.

Run: `MUJOCO_GL=egl .venv/bin/python bench/actor_step.py [--task sim_pick_cube] [--blocks 4]
[--steps-per-block 200] [--no-browser] [--paced]`. Prints one JSON line; target: <= 0.5 ms added
per step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from header import cpus, load_1m, machine, run_footer

TARGET_ADDED_MS = 0.5
BROWSER = ("chrom", "headless_shell")  # Chromium's processes
SERVER = ("python",)  # the dashboard's server process (the only python child here)


def log(msg: str) -> None:
    print(f"[actor step] {msg}", file=sys.stderr, flush=True)


class StepClock:
    """The env as the actor sees it, with the wall time between one step's return and the next
    step's return summed (the whole loop iteration: policy, env, spool, feed), resets excluded,
    and the part of it outside `env.step` (the actor's own work: the policy, the spool, the feed;
    a paced env sleeps inside its step)."""

    def __init__(self, env):
        self.env, self.seconds, self.outside, self.steps, self._last = env, 0.0, 0.0, 0, None

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._last = time.perf_counter()
        return out

    def step(self, action):
        called = time.perf_counter()
        out = self.env.step(action)
        now = time.perf_counter()
        self.seconds += now - self._last
        self.outside += called - self._last
        self.steps += 1
        self._last = now
        return out

    def __getattr__(self, name):
        return getattr(self.env, name)


def cpu_seconds(prefixes: tuple[str, ...]) -> float:
    """CPU seconds used so far by this process's descendants whose name starts with one of
    `prefixes` (the browser's processes; the dashboard's server, a python child)."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name().startswith(prefixes):
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.Error:  # ended meanwhile
            pass
    return total


def task_config(task: str, folder: Path, paced: bool):
    import experiments

    base = experiments.load(task)
    return dataclasses.replace(
        base, runs_dir=str(folder),
        env=dataclasses.replace(base.env, realtime=paced, max_episode_steps=100),
        actor=dataclasses.replace(base.actor, eval_every_episodes=0, max_steps_per_update=None),
        dashboard=dataclasses.replace(base.dashboard, port=0))


def block(actor, clock: StepClock, steps: int, source) -> tuple[float, float]:
    """(ms per step, ms per step outside env.step) over at least `steps` steps of whole
    episodes."""
    seconds, outside, count = clock.seconds, clock.outside, clock.steps
    stop = threading.Event()
    while clock.steps - count < steps:
        actor.run_episode(stop)
        for batch in source.receive(1000, 0.0):  # the in-process spool is memory: drain it
            source.acknowledge(batch.actor_id, batch.last_sequence)
    n = clock.steps - count
    return 1000 * (clock.seconds - seconds) / n, 1000 * (clock.outside - outside) / n


def run(task: str, blocks: int, steps: int, browser: bool, paced: bool) -> dict:
    from serl.actor.build import build_actor, inprocess_actor_side
    from serl.agents.factory import policy_params_template
    from serl.dashboard.browser import dashboard_page
    from serl.dashboard.opening import open_dashboard
    from serl.envs.contract import policy_spaces
    from serl.transport.inprocess import InProcessTransport
    from serl.transport.interfaces import WeightsVersion

    folder = Path(tempfile.mkdtemp(prefix="actor_step_"))
    config = task_config(task, folder, paced)
    observation_space, action_space = policy_spaces(config.env, config.wrappers)
    transport = InProcessTransport()
    template = policy_params_template(config.agent, observation_space, action_space.shape[0])
    transport.publisher().publish(WeightsVersion(0, 1), template)
    side, source = inprocess_actor_side(transport, config), transport.transition_source()
    dashboard = open_dashboard(config.dashboard, folder / "token")
    actor = build_actor(config, side, folder / "actor", dashboard=dashboard)
    feed, clock = actor.feed, StepClock(actor.env)
    actor.env = clock
    actor.wait_for_weights()
    off, on, shown, on_steps = [], [], None, 0
    try:
        page_context = dashboard_page(dashboard.url) if browser else None
        page = page_context.__enter__() if page_context else None
        try:
            log("warm-up")
            block(actor, clock, 50, source)
            actor.feed = None
            block(actor, clock, 50, source)
            feed.seconds, feed.calls = 0.0, 0
            browser_s = server_s = 0.0
            for k in range(blocks):
                actor.feed = None
                off.append(block(actor, clock, steps, source))
                actor.feed = feed
                before = cpu_seconds(BROWSER), cpu_seconds(SERVER), clock.steps
                on.append(block(actor, clock, steps, source))
                browser_s += cpu_seconds(BROWSER) - before[0]
                server_s += cpu_seconds(SERVER) - before[1]
                on_steps += clock.steps - before[2]
                log(f"block {k}: {off[-1][0]:.3f} ms ({off[-1][1]:.3f} outside the env) without, "
                    f"{on[-1][0]:.3f} ms ({on[-1][1]:.3f}) with the dashboard")
            if page is not None:
                shown = int(page.evaluate("document.body.dataset.states || 0"))
        finally:
            if page_context:
                page_context.__exit__(None, None, None)
    finally:
        dashboard.close()
        actor.env.env.close()
    return {**compare(off, on, 0, ""), **compare(off, on, 1, "outside_env_"),
            "feed_ms_per_step": round(1000 * feed.seconds / max(1, on_steps), 4),
            # CPU per step with the dashboard on, in the browser and in the dashboard's server
            "browser_cpu_ms_per_step": round(1000 * browser_s / max(1, on_steps), 3),
            "server_cpu_ms_per_step": round(1000 * server_s / max(1, on_steps), 3),
            "page_states_shown": shown, "cameras": list(side.view.camera_keys)}


def compare(off: list, on: list, k: int, prefix: str) -> dict:
    """Means of measure `k` without and with the dashboard, their difference and its standard
    error over the paired blocks."""
    a, b = [x[k] for x in off], [x[k] for x in on]
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None
    return {f"{prefix}step_ms_without": round(statistics.mean(a), 3),
            f"{prefix}step_ms_with": round(statistics.mean(b), 3),
            f"{prefix}added_ms": round(statistics.mean(diffs), 3),
            f"{prefix}added_ms_se": None if se is None else round(se, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sim_pick_cube")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--steps-per-block", type=int, default=200)
    parser.add_argument("--no-browser", action="store_true",
                        help="feed the dashboard with no page open")
    parser.add_argument("--paced", action="store_true",
                        help="the env paced at its control rate, as a rig's (the browser then "
                        "works while the loop waits)")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    started, load_start = time.perf_counter(), load_1m()
    result = run(args.task, args.blocks, args.steps_per_block, not args.no_browser, args.paced)
    print(json.dumps({"bench": "actor_step", "task": args.task, "paced": args.paced,
                      "blocks": args.blocks,
                      "steps_per_block": args.steps_per_block, "browser": not args.no_browser,
                      **result, "target_added_ms": TARGET_ADDED_MS, "cores": cpus(),
                      "machine": machine(), **run_footer(load_start, started)}))


if __name__ == "__main__":
    main()
