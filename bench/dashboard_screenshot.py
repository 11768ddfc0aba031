"""The README's picture of the operator's dashboard: `serl train sim_pick_cube` (two processes,
the scripted operator, evaluations every few episodes) for a few minutes, then a headless Chromium
screenshot of the page the actor serves. The policy reads the state (the cameras are still
rendered and shown), so the curve has points within minutes on a CPU.

Run: `MUJOCO_GL=egl .venv/bin/python bench/dashboard_screenshot.py [--minutes 4]
[--out docs/images/dashboard.png]`. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from header import cpus, machine

TASK = ["sim_pick_cube", "--agent.encoder.image-keys", "--actor.eval-every-episodes", "4",
        "--actor.eval-episodes", "2", "--learner.min-online", "300", "--actor.free-steps", "300",
        "--demo-episodes", "5"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path("docs/images/dashboard.png"))
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    from serl.dashboard.browser import dashboard_page
    from serl.ports import free_port

    folder, port = Path(tempfile.mkdtemp(prefix="dashboard_shot_")), free_port()
    log = folder / "train.log"
    train = subprocess.Popen(
        [sys.executable, "-m", "serl.cli", "train", *TASK, "--runs-dir", str(folder / "runs"),
         "--demos-dir", str(folder / "demos"), "--run", "shot", "--dashboard.port", str(port)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        token = folder / "runs" / "shot" / "actor" / "actor-0.dashboard_token"
        while not token.exists():
            if train.poll() is not None:
                sys.exit(f"serl train ended early:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/?token={token.read_text().strip()}"
        time.sleep(60 * args.minutes)
        with dashboard_page(url, 1280, 900) as page:
            page.wait_for_selector("#cam-front", timeout=30_000)
            time.sleep(3)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
    finally:
        if train.poll() is None:
            os.killpg(train.pid, signal.SIGINT)
            try:
                train.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(train.pid, signal.SIGKILL)
    print(json.dumps({"bench": "dashboard_screenshot", "minutes": args.minutes,
                      "out": str(args.out), "cores": cpus(), "machine": machine()}))


if __name__ == "__main__":
    main()
