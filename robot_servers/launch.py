"""Start the simulated driver and the robot server as subprocesses, wait until the server reports
robot state, and always tear both down (SIGTERM, then SIGKILL). Used by tests, the benchmark and
people. The driver follows the rig file: adapter `sim` runs robot_servers/sim_franka_driver.py (the
MuJoCo Panda on ROS 2), adapter `libfranka` runs robot_servers/franky_sim_rig.py (franky-sim on a
free loopback address that replaces `libfranka.fci_host`, so parallel launches never meet):

    with launch_sim_rig("hardware_configs/sim_panda.yaml") as rig:
        client = RobotClient(rig.address)
        ...

    python -m robot_servers.launch hardware_configs/sim_panda.yaml   # until Ctrl-C

Each launch gets a private ROS_DOMAIN_ID (unless one is given) and a free loopback port, with ROS
discovery kept on the host, so parallel launches and other machines never see each other's topics.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from robot_servers.ros_msgs import loopback_env
from serl.ports import free_port
from serl.robot.client import RobotClient, RobotError
from serl.robot.hardware_config import HardwareConfig, load_hardware_config, parse_hardware_config
from serl.robot.ros_domain import private_domain_id
from serl.transport.keys import ActorCurve


@dataclass(frozen=True)
class SimRig:
    address: str  # where the robot server listens
    domain_id: int  # ROS_DOMAIN_ID of the driver and server
    config: HardwareConfig  # the rig file as the processes read it
    config_path: Path  # the file they read (a copy with the launch's address)
    # environment to run other ROS nodes of this rig (e.g. camera subscribers) with
    env: dict[str, str]
    driver: subprocess.Popen
    server: subprocess.Popen


@contextlib.contextmanager
def launch_sim_rig(
    config: str | Path | dict,
    domain_id: int | None = None,
    address: str | None = None,
    timeout_s: float = 60.0,
    log_dir: str | Path | None = None,
    curve: ActorCurve | None = None,
) -> Iterator[SimRig]:
    """Driver + server for `config` (a rig file path, or its content as a dict), ready to serve on
    exit. `address`: where the server listens (default: a free loopback port). `curve`: the client
    keys the readiness check uses when the server runs CURVE (default: the rig file's curve_client_*
    keys)."""
    raw = yaml.safe_load(Path(config).read_text()) if not isinstance(config, dict) else dict(config)
    domain = domain_id if domain_id is not None else private_domain_id()
    address = address or f"tcp://127.0.0.1:{free_port()}"
    raw["robot"] = {**raw.get("robot", {}), "address": address}
    driver = DRIVERS.get(raw["robot"].get("adapter", "sim"))
    if driver is None:
        raise ValueError("launch_sim_rig starts simulated rigs: adapter sim or libfranka")
    if driver == "franky_sim_rig":
        raw["libfranka"] = {**raw.get("libfranka", {}), "fci_host": free_fci_host()}
    cfg = parse_hardware_config(
        raw, str(config) if not isinstance(config, dict) else "launch config"
    )
    r = cfg.robot
    if curve is None and r.curve_client_secret_key is not None:
        curve = ActorCurve(r.curve_client_secret_key, r.curve_server_public_key)
    env = loopback_env(domain)
    env.setdefault("MUJOCO_GL", "egl")
    with tempfile.TemporaryDirectory(prefix="serl-rig-") as tmp:
        path = Path(tmp) / "rig.yaml"
        path.write_text(yaml.safe_dump(raw))
        log_dir = log_dir if log_dir is not None else os.environ.get("SERL_RIG_LOG_DIR")
        logs = (
            Path(tempfile.mkdtemp(prefix="rig-", dir=log_dir)) if log_dir is not None else Path(tmp)
        )
        procs: list[subprocess.Popen] = []
        try:
            for name in (driver, "franka_server"):
                # closed with the process below
                out = open(logs / f"{name}.log", "wb")  # noqa: SIM115
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", f"robot_servers.{name}", str(path)],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        preexec_fn=_die_with_parent,
                    )
                )
                out.close()
            _wait_ready(address, procs, logs, timeout_s, curve)
            yield SimRig(address, domain, cfg, path, env, procs[0], procs[1])
        finally:
            for proc in reversed(procs):
                stop_process(proc)


DRIVERS = {"sim": "sim_franka_driver", "libfranka": "franky_sim_rig"}
FCI_PORTS = (1337, 1338)  # libfranka's robot and gripper ports


def free_fci_host() -> str:
    """A loopback address (127.x.y.z) whose libfranka ports are free."""
    rng = random.Random()
    for _ in range(100):
        host = f"127.{rng.randrange(100, 250)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        try:
            for port in FCI_PORTS:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((host, port))
        except OSError:
            continue
        return host
    raise RuntimeError("no free loopback address for franky-sim")


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the launching process dies, however it dies
    (Linux), so a killed test run never leaves a driver spinning."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_ready(address: str, procs: list[subprocess.Popen], logs: Path, timeout_s: float,
                curve: ActorCurve | None) -> None:
    deadline = time.monotonic() + timeout_s
    with RobotClient(address, timeout_s=0.5, curve=curve) as client:
        while time.monotonic() < deadline:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{proc.args[2]} exited with {proc.returncode}:\n{_tail(logs)}"
                    )
            try:
                health = client.health()
                if health["has_state"] and health["state_age_s"] < 0.5:
                    return
            except RobotError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"the simulated rig was not ready within {timeout_s:.0f} s:\n{_tail(logs)}")


def _tail(logs: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n" + p.read_text(errors="replace")[-2000:]
        for p in sorted(logs.glob("*.log"))
    )


def stop_process(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGTERM, wait, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="run the simulated Franka driver and the robot server"
    )
    parser.add_argument("config", help="rig file, e.g. hardware_configs/sim_panda.yaml")
    parser.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "0")))
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop the rig when the process that started this one is gone (an env "
                        "that launched it and was killed: nothing is left spinning)")
    args = parser.parse_args(argv)
    parent = os.getppid()
    cfg = load_hardware_config(args.config)  # fail early, naming the key
    if cfg.robot.adapter not in DRIVERS or cfg.sim is None:
        sys.exit(
            "robot_servers.launch starts a simulated rig (a 'sim' section, adapter sim or "
            "libfranka); on a real rig run robot_servers.franka_server"
        )
    # unwind, so the children are stopped in order
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with launch_sim_rig(args.config, domain_id=args.domain_id, address=cfg.robot.address) as rig:
        print(
            f"robot server on {rig.address}, ROS_DOMAIN_ID={rig.domain_id}; Ctrl-C stops",
            flush=True,
        )
        try:
            while rig.driver.poll() is None and rig.server.poll() is None:
                if args.exit_with_parent and os.getppid() != parent:
                    print("the launching process is gone: stopping the rig", flush=True)
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
