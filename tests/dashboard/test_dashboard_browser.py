"""The operator's dashboard in a real browser (Debian's Chromium driven by Playwright) against a
real `serl actor` on the simulated arm with a reward classifier, beside a real `serl learner`: the
page shows camera frames that change, the action, classifier and learner panels update, clicking
abort ends the actor's episode, and the page reconnects by itself after the actor restarts.

Chromium is installed by `make setup` (Debian's `chromium` package); `SERL_CHROMIUM` names another
binary (`serl.dashboard.browser`). Without one this test fails: it is how the page is tested."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serl.dashboard.browser import chromium_binary, dashboard_page
from serl.ports import free_ports

NEVER = 1.0 - 1e-6  # a threshold an untrained classifier never reaches: episodes run on
TASK = ["sim_pick_cube", "--env.image-size", "32", "--env.realtime",
        "--env.max-episode-steps", "400", "--agent.encoder.image-keys",
        "--agent.hidden-dims", "16", "--learner.min-online", "100000",
        "--actor.free-steps", "100000", "--actor.eval-every-episodes", "0",
        "--demo-episodes", "0"]


def save_classifier(folder: Path) -> None:
    """An untrained classifier of the 32x32 front camera (what is shown, not how well it judges)."""
    import jax

    from serl.agents.classifier import init_params
    from serl.agents.config import ClassifierConfig
    from serl.reward.store import save_version

    cfg = ClassifierConfig(image_keys=("front",), image_shape=(32, 32, 3), bottleneck_dim=8,
                           hidden_dims=(8,), confirm_steps=1)
    save_version(folder, init_params(cfg, jax.random.PRNGKey(0)), cfg,
                 {"threshold": NEVER, "validation": {}})


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "serl.cli", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def number(page, selector: str) -> int:
    text = page.text_content(selector) or ""
    return int(text) if text.isdigit() else -1


@pytest.mark.timeout(240)
def test_the_page_follows_a_real_actor_and_controls_it(tmp_path):
    try:
        chromium_binary()
    except FileNotFoundError as err:
        pytest.fail(str(err))
    save_classifier(tmp_path / "classifiers")
    data, weights, web = free_ports(3)
    common = [*TASK, "--runs-dir", str(tmp_path / "runs"), "--run", "page",
              "--demos-dir", str(tmp_path / "no-demos"),
              "--transport.data-port", str(data), "--transport.weights-port", str(weights),
              "--reward.classifier-dir", str(tmp_path / "classifiers")]
    actor_args = ["actor", *common, "--dashboard.port", str(web)]
    learner = start(["learner", *common], tmp_path / "learner.log")
    actor = start(actor_args, tmp_path / "actor.log")
    logs = lambda: "\n".join(p.read_text()[-2000:] for p in tmp_path.glob("*.log"))  # noqa: E731
    try:
        token_file = tmp_path / "runs" / "page" / "actor" / "actor-0.dashboard_token"
        deadline = time.monotonic() + 90
        while f"127.0.0.1:{web}/?token=" not in (tmp_path / "actor.log").read_text():
            assert time.monotonic() < deadline and actor.poll() is None, logs()
            time.sleep(0.2)
        url = f"http://127.0.0.1:{web}/?token={token_file.read_text().strip()}"
        with dashboard_page(url) as page:
            # frames arrive and change; the panels follow the actor's steps
            page.wait_for_function("Number(document.querySelector('#cam-front')?.dataset.seq) "
                                   ">= 3", timeout=90_000)
            first = int(page.get_attribute("#cam-front", "data-seq"))
            page.wait_for_function(f"Number(document.querySelector('#cam-front').dataset.seq) "
                                   f"> {first}", timeout=10_000)
            assert page.get_attribute("#cam-wrist", "data-seq") is not None
            assert "capture to display" in page.text_content("#cams")
            step = number(page, "#step")
            page.wait_for_function(f"Number(document.getElementById('step').textContent) > "
                                   f"{step}", timeout=10_000)
            assert "gripper" in page.text_content("#action")
            classifier = page.text_content("#classifier")
            assert "classifier" in classifier and f"threshold {NEVER:.3f}" in classifier
            page.wait_for_function("document.getElementById('learner').textContent"
                                   ".includes('connected')", timeout=20_000)
            assert "buffers: online" in page.text_content("#learner")
            assert "acting with weights 0:" in page.text_content("#learner")
            # abort: the actor ends its episode at once (long before its 400 steps)
            page.click("button[data-control=abort]")
            page.wait_for_function("document.getElementById('last-episode').dataset.outcome "
                                   "=== 'aborted'", timeout=20_000)
            assert "aborted" in page.text_content("#last-episode")
            history = tmp_path / "runs" / "page" / "history.jsonl"
            deadline = time.monotonic() + 20
            while not history.exists() or '"aborted": 1.0' not in history.read_text():
                assert time.monotonic() < deadline, logs()
                time.sleep(0.2)
            aborted = [json.loads(line) for line in history.read_text().splitlines()]
            assert aborted[-1]["aborted"] == 1.0 and aborted[-1]["length"] < 400
            # the actor restarts: the page shows it is gone, then follows the new one by itself
            stop(actor)
            page.wait_for_function("document.getElementById('link').textContent "
                                   "=== 'reconnecting'", timeout=10_000)
            states = int(page.evaluate("document.body.dataset.states"))
            actor = start(actor_args, tmp_path / "actor2.log")
            page.wait_for_function(f"Number(document.body.dataset.states) > {states} + 5 && "
                                   "document.getElementById('link').textContent === 'live'",
                                   timeout=90_000)
            page.screenshot(path=str(tmp_path / "dashboard.png"))
        assert actor.poll() is None and learner.poll() is None, logs()
    finally:
        stop(actor)
        stop(learner)
