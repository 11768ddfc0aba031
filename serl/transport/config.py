"""Where the learner listens and how actors reach it; all of it may change when a run is resumed."""

from __future__ import annotations

from dataclasses import dataclass

from serl.resumable import resumable

# The actor id an actor runs under unless configured, and so the name `serl keys generate` gives
# the one key it makes by default (a CURVE key acts only as the actor id it is named after).
DEFAULT_ACTOR_ID = "actor-0"


@dataclass(frozen=True)
class TransportConfig:
    """The transport's settings; every field is resumable."""

    bind_host: str = resumable("127.0.0.1")  # learner's interface (loopback unless set)
    learner_host: str = resumable("127.0.0.1")  # where actors find the learner
    data_port: int = resumable(5588)  # transitions, acks, handshakes (ROUTER)
    weights_port: int = resumable(5589)  # policy weights (PUB)
    jpeg_quality: int | None = resumable(90)  # camera frames on the wire; None: lossless
    # folder from `serl keys generate`: CURVE on both ends, each actor bound to its key's name
    curve_keys: str | None = resumable(None)
    spool_capacity_gb: float = resumable(8.0)  # actor's spool; when full, no new episode
    # A non-loopback bind_host without curve_keys is refused (anyone on that network could feed
    # transitions under any actor id, take an actor's connection, read the weights); True serves
    # it anyway, with a loud warning. Only for a network you trust completely.
    allow_unauthenticated_network: bool = resumable(False)
