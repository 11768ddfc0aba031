"""Where the learner listens and how actors reach it; all of it may change when a run is resumed."""

from __future__ import annotations

from dataclasses import dataclass, field

RESUMABLE = {"resumable": True}


@dataclass(frozen=True)
class TransportConfig:
    bind_host: str = field(default="127.0.0.1", metadata=RESUMABLE)  # learner's interface (loopback unless set)
    learner_host: str = field(default="127.0.0.1", metadata=RESUMABLE)  # where actors find the learner
    data_port: int = field(default=5588, metadata=RESUMABLE)  # transitions, acks, handshakes (ROUTER)
    weights_port: int = field(default=5589, metadata=RESUMABLE)  # policy weights (PUB)
    jpeg_quality: int | None = field(default=90, metadata=RESUMABLE)  # camera frames on the wire; None: lossless
    curve_keys: str | None = field(default=None, metadata=RESUMABLE)  # folder from `serl keys generate`
    spool_capacity_gb: float = field(default=8.0, metadata=RESUMABLE)  # actor's spool; when full, no new episode
