"""Chaos run (long): `serl learner` and `serl actor` (sim_pick_cube_state, tiny networks, realtime
50 Hz) as real processes, the actor reaching the learner through a TCP proxy so the network can be
cut. A seeded sequence of faults at random moments: SIGKILLs of either side at random times and at
adversarial points (learner during a checkpoint write and between a batch's insertion and its
acknowledgement, actor mid-episode), a 30 s network cut (the proxy stops forwarding: packets vanish,
as with a pulled cable) and a SIGINT of both sides; every restart uses --resume. Then `serl.audit`
checks the run. Prints one JSON line: faults, transitions produced / stored / lost / duplicated,
updates redone, recovery times (fault to the pipeline acknowledging new transitions again, restart
included).

Run: `.venv/bin/python bench/chaos.py [--seed 0] [--cut-s 30] [--rounds 2]` (about 5 minutes on 2
cores).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from serl.audit import audit_run
from serl.ports import free_ports
from serl.transport.produced_log import read_produced_log


def wait_for(predicate, timeout: float, what: str) -> float:
    """Seconds until `predicate()` held; RuntimeError after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class Proxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`; while `cut`, bytes are neither read nor sent
    (a pulled cable: no FIN, no RST, just silence), on old and new connections alike."""

    def __init__(self, target: int):
        self.target, self.cut = target, threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()  # the learner is down: connection refused, as without a proxy
                continue
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                if self.cut.is_set():
                    time.sleep(0.05)
                    continue
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for s in ready:
                    data = s.recv(1 << 16)
                    if not data:
                        return
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()


class ChaosRun:
    def __init__(self, root: Path, seed: int):
        self.root, self.rng = root, random.Random(seed)
        data, weights = free_ports(2)
        self.proxies = (Proxy(data), Proxy(weights))
        self.common = ["sim_pick_cube_state", "--runs-dir", str(root), "--run", "chaos",
                       "--demos-dir", str(root / "no-demos"), "--learner.min-online", "40",
                       "--learner.min-demo", "10", "--learner.publish-every", "5",
                       "--learner.checkpoint-every", "20", "--agent.batch-size", "16",
                       "--agent.hidden-dims", "32", "32", "--operator.takeover-prob", "0.15",
                       "--env.max-episode-steps", "30", "--env.control-hz", "50", "--env.realtime"]
        self.ports = {"learner": (data, weights), "actor": (self.proxies[0].port,
                                                            self.proxies[1].port)}
        self.steps = 10**9
        self.procs: dict[str, subprocess.Popen] = {}
        self.triggers: dict[str, Path] = {}
        self.starts = 0
        self.steps_during_cut = 0

    @property
    def run_dir(self) -> Path:
        return self.root / "chaos"

    def start(self, role: str, resume: bool = True) -> None:
        """Start `role` with its adversarial points armed by fresh trigger files."""
        self.starts += 1
        points = ["during_checkpoint", "after_append"] if role == "learner" else ["mid_episode"]
        self.triggers = {k: v for k, v in self.triggers.items() if not k.startswith(role)}
        spec = []
        for point in points:
            trigger = self.root / f"trigger-{self.starts}-{point}"
            self.triggers[f"{role}:{point}"] = trigger
            spec.append(f"{point}:1@{trigger}")
        data, weights = self.ports[role]
        args = [
            sys.executable,
            "-m",
            "serl.cli",
            role,
            *self.common,
            "--transport.data-port",
            str(data),
            "--transport.weights-port",
            str(weights),
        ]
        # Without evaluations (not stored) every incarnation's weights show in the stored
        # transitions.
        args += (
            (["--resume"] if resume else [])
            if role == "learner"
            else ["--actor.max-env-steps", str(self.steps), "--actor.eval-every-episodes", "0"]
        )
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "SERL_FAULT": ",".join(spec)}
        self.procs[role] = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=open(self.root / f"{role}.log", "a")
        )

    def produced(self) -> int:
        path = self.run_dir / "actor" / "actor-0" / "spool" / "produced.log"
        return sum(r.count for r in read_produced_log(path)) if path.exists() else 0

    def acked(self) -> int:
        try:
            return int((self.run_dir / "actor" / "actor-0" / "spool" / "acked").read_text())
        except (FileNotFoundError, ValueError):
            return -1

    def recovered(self, acked_before: int, timeout: float = 180) -> float:
        """Seconds until the learner acknowledges transitions beyond `acked_before`."""
        return wait_for(lambda: self.acked() > acked_before, timeout, "acknowledgements to resume")

    def kill(self, role: str, point: str | None) -> float:
        """SIGKILL `role` now (point None) or at its next `point`; restart it; seconds from death to
        recovery."""
        proc = self.procs[role]
        if point is None:
            proc.kill()
        else:
            self.triggers[f"{role}:{point}"].touch()
        if proc.wait(timeout=120) != -signal.SIGKILL:
            raise RuntimeError(f"{role} exited with {proc.returncode} instead of dying at {point}")
        died, acked = time.monotonic(), self.acked()
        self.start(role)
        self.recovered(acked)
        return time.monotonic() - died

    def network_cut(self, seconds: float) -> float:
        """Cut both links for `seconds`; seconds from the reconnection to
        acknowledgements resuming."""
        for p in self.proxies:
            p.cut.set()
        produced = self.produced()
        time.sleep(seconds)
        # the actor keeps acting with its last weights
        self.steps_during_cut = self.produced() - produced
        acked = self.acked()
        for p in self.proxies:
            p.cut.clear()
        return self.recovered(acked)

    def interrupt_both(self) -> tuple[float, float]:
        """SIGINT to both; (slowest exit seconds, recovery seconds after restarting both)."""
        start = time.monotonic()
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        codes = [p.wait(timeout=60) for p in self.procs.values()]
        exit_s = time.monotonic() - start
        if codes != [0, 0]:
            raise RuntimeError(f"SIGINT exits {codes}")
        acked = self.acked()
        self.start("learner")
        self.start("actor")
        return exit_s, self.recovered(acked)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


FAULTS = [
    ("learner", "during_checkpoint"),
    ("learner", "after_append"),
    ("learner", None),
    ("actor", "mid_episode"),
    ("actor", None),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cut-s", type=float, default=30.0, help="length of the network cut")
    parser.add_argument("--rounds", type=int, default=2, help="each kind of kill this many times")
    parser.add_argument(
        "--keep", default=None, help="run in this folder (kept) instead of a temporary one"
    )
    args = parser.parse_args()
    # so `finally` stops the learner and actor
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    root = Path(args.keep or tempfile.mkdtemp(prefix="serl-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    run = ChaosRun(root, args.seed)
    plan = [f for _ in range(args.rounds) for f in FAULTS] + [("network", None), ("both", "SIGINT")]
    run.rng.shuffle(plan)
    recovery: dict[str, list[float]] = {}
    start = time.monotonic()
    try:
        run.start("learner", resume=False)
        run.start("actor")
        run.recovered(-1, timeout=300)
        for role, point in plan:
            time.sleep(run.rng.uniform(3.0, 10.0))  # a random moment
            name = f"{role}:{point or 'random'}"
            if role == "network":
                recovery.setdefault("network_cut", []).append(run.network_cut(args.cut_s))
            elif role == "both":
                exit_s, rec = run.interrupt_both()
                recovery.setdefault("sigint_exit", []).append(exit_s)
                recovery.setdefault("sigint_restart", []).append(rec)
            else:
                recovery.setdefault(name, []).append(run.kill(role, point))
            print(f"{time.monotonic() - start:6.1f} s  {name}: recovered", file=sys.stderr)
        # The end: the actor finishes a step budget and drains its spool, the learner stops on
        # SIGTERM.
        run.procs["actor"].send_signal(signal.SIGTERM)
        run.procs["actor"].wait(timeout=60)
        run.steps = run.produced() + 100
        run.start("actor")
        if run.procs["actor"].wait(timeout=300) != 0:
            raise RuntimeError("the last actor did not finish its budget")
        run.procs["learner"].send_signal(signal.SIGTERM)
        run.procs["learner"].wait(timeout=60)
    finally:
        run.close()
    report = audit_run(run.run_dir, expected_steps=run.steps)
    kills = sum(1 for role, _ in plan if role in ("learner", "actor"))
    print(
        json.dumps(
            {
                "bench": "chaos",
                "seed": args.seed,
                "faults": len(plan),
                "kills": kills,
                "network_cut_s": args.cut_s,
                "steps_during_cut": run.steps_during_cut,
                **{k: v for k, v in report.figures().items() if k != "problems"},
                "unseen_incarnations": report.unseen_incarnations,
                "audit_problems": report.problems,
                "recovery_s": {
                    k: {"n": len(v), "max": round(max(v), 1), "mean": round(sum(v) / len(v), 1)}
                    for k, v in sorted(recovery.items())
                },
                "wall_s": round(time.monotonic() - start),
                "run_dir": str(run.run_dir),
            }
        )
    )


if __name__ == "__main__":
    main()
