"""`open_dashboard`: the board, the page's controls and the server (a child process,
`serl.dashboard.process`) for one actor, and the feed that ties them to its loop. The token lives
in the actor's folder, so a restarted actor serves the same URL and an open page reconnects to
it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from serl.dashboard.board import Board
from serl.dashboard.config import DashboardConfig
from serl.dashboard.controls import PageControls
from serl.dashboard.feed import DashboardFeed

log = logging.getLogger("serl.dashboard")


@dataclass
class Dashboard:
    server: object  # a started `serl.dashboard.process.ServerProcess`
    board: Board  # the actor's board (a RemoteBoard: each update also goes to the server)
    # the page's buttons, for the env's intervention device (None: view only)
    controls: PageControls | None

    @property
    def url(self) -> str:
        return self.server.url

    def feed(self, view, labels: tuple[str, ...], actor_id: str, side, env) -> DashboardFeed:
        """The feed of an actor with frame view `view`, transport end `side` (an `ActorSide`) and
        env `env` (a rig's robot state, when the raw env has one)."""
        raw = getattr(env, "unwrapped", env)
        robot = (lambda: robot_status(raw)) if hasattr(raw, "robot_state") else (lambda: None)
        controls = self.controls
        return DashboardFeed(
            self.board, view, labels, actor_id, learner_status=side.learner_status,
            connected=side.connected, spool_fill=side.spool_fill, robot_status=robot,
            controls=lambda: {"enabled": controls is not None,
                              "presses": controls.presses if controls else 0})

    def close(self) -> None:
        self.server.close()


def robot_status(raw) -> dict:
    """What the page shows of a rig (a `FrankaEnv`): the robot server's mode and fault as of the
    last state it sent, and the last step's round trip; read from memory, never asked for."""
    state, loop = raw.robot_state, raw.loop
    return {"mode": state.get("mode", "not connected"), "fault": state.get("fault") or None,
            "rtt_ms": round(1000 * float(loop.get("rtt_s", 0.0)), 2)}


def open_dashboard(cfg: DashboardConfig, token_path: Path,
                   controls: bool = True) -> Dashboard | None:
    """The started dashboard `cfg` describes, its URL printed; None when `cfg.enabled` is off.
    `controls` False: a view only whatever `cfg` allows (an env built without the page's
    buttons)."""
    if not cfg.enabled:
        return None
    from serl.dashboard.access import run_token
    from serl.dashboard.process import RemoteBoard, RemoteControls, ServerProcess

    with_controls = cfg.controls_enabled and controls
    server = ServerProcess(cfg, run_token(token_path), with_controls)
    board = RemoteBoard(server.feed)
    controls = RemoteControls(server.presses) if with_controls else None
    mode = "" if controls is not None else " (view only)"
    print(f"operator dashboard{mode}: {server.url}", flush=True)
    log.info("operator dashboard%s at %s", mode, server.url)
    return Dashboard(server, board, controls)
