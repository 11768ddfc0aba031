"""The dashboard's configuration, importable without a server."""

from __future__ import annotations

from dataclasses import dataclass

from serl.ports import is_loopback


@dataclass(frozen=True)
class DashboardConfig:
    # serve the operator's page from the actor (its URL is printed at start)
    enabled: bool = True
    # loopback: only a browser on the robot PC; another address shows the view to that network,
    # and its controls only with allow_remote_control
    host: str = "127.0.0.1"
    # taken (a second actor on this PC): the next free port is used, and its URL printed
    port: int = 8470
    # with a non-loopback host: the page's buttons work from other machines too (anyone holding
    # the URL's token can pause, abort or mark episodes)
    allow_remote_control: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"dashboard.port must be in 0..65535, got {self.port}")

    @property
    def controls_enabled(self) -> bool:
        """Whether the page may press operator controls."""
        return self.enabled and (is_loopback(self.host) or self.allow_remote_control)
