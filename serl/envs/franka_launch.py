"""Start the simulated rig (driver + robot server) for a `FrankaEnv` whose config sets `launch_sim`,
as one child process: `python -m robot_servers.launch` on a copy of the rig file with a free
loopback port, a private ROS domain and only the cameras the env reads (the launcher itself puts a
franky-sim rig on a free loopback FCI address). It runs in its own process group, so closing the
env ends the launcher and the two processes it started, even if the launcher is stuck; a process
killed before it could close its env leaves nothing either (the launcher stops the rig within
0.5 s of its parent's death). (`serl`
never imports `robot_servers`; the process boundary is the interface.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from serl.ports import free_port
from serl.robot.client import RobotClient, RobotError
from serl.robot.ros_domain import private_domain_id


class SimRigProcess:
    """The launcher child. `config_path` is the rig copy it serves (the env reads it), `domain_id`
    its ROS domain. `cameras`: the rig's cameras to keep (None: all); the others are left out of
    the copy, so the rig renders nothing nobody reads."""

    def __init__(self, rig_file: str | Path, cameras: tuple[str, ...] | None = None,
                 timeout_s: float = 60.0):
        raw = yaml.safe_load(Path(rig_file).read_text())
        self.domain_id = private_domain_id()
        self.address = f"tcp://127.0.0.1:{free_port()}"
        raw["robot"] = {**raw.get("robot", {}), "address": self.address}
        if cameras is not None:
            raw["cameras"] = {n: c for n, c in (raw.get("cameras") or {}).items() if n in cameras}
        self._tmp = tempfile.TemporaryDirectory(prefix="serl-sim-rig-")
        self.config_path = Path(self._tmp.name) / "rig.yaml"
        self.config_path.write_text(yaml.safe_dump(raw))
        log = open(Path(self._tmp.name) / "launch.log", "wb")  # noqa: SIM115 -- the child owns it from here
        env = {**os.environ, "ROS_DOMAIN_ID": str(self.domain_id)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "robot_servers.launch",
                str(self.config_path),
                "--domain-id",
                str(self.domain_id),
                "--exit-with-parent",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with RobotClient(self.address, timeout_s=0.5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"the simulated rig exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    health = client.health()
                    if health.get("has_state") and health.get("state_age_s", 1.0) < 0.5:
                        return
                except RobotError:
                    pass
                time.sleep(0.2)
        raise TimeoutError(
            f"the simulated rig was not ready within {timeout_s:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        path = Path(self._tmp.name) / "launch.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def close(self) -> None:
        """SIGINT (the launcher then stops driver and server), then SIGKILL to the whole group if it
        hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15.0)
            except subprocess.TimeoutExpired:
                pass
        try:
            # anything of the group still alive (our own children only)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        _wait_group_gone(self.proc.pid, timeout_s=10.0)
        self._tmp.cleanup()


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    """Wait until no live process is left in the group (SIGKILL is delivered asynchronously), so the
    next rig never starts beside a dying one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not live_group_members(pgid):
            return
        time.sleep(0.05)


def live_group_members(pgid: int) -> list[int]:
    """Pids of the processes of group `pgid` still running (zombies left for init to reap are
    not)."""
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _in_live_group(p, pgid)]


def _in_live_group(proc: Path, pgid: int) -> bool:
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[2]) == pgid  # state, ppid, pgrp
