"""Who may reach the learner, and as which actor.

Two rules, both checked by the learner:
- Binding: the learner binds a non-loopback interface ("0.0.0.0", "*", a LAN address, an interface
  name) only with CURVE keys, or when `transport.allow_unauthenticated_network` says to anyway:
  without CURVE anyone who can reach the port can feed transitions under any actor id, take an
  actor's connection and read the policy weights. `check_bind` refuses before anything is bound.
- Identity: with CURVE, a connection acts only as the actor id its key was generated for, i.e. the
  name of its file `authorized/<name>.key` on the learner (`serl keys generate DIR --actor NAME`).
  Every actor message is checked against that name (`identity_refusal`); a refused message gets a
  `refuse` reply naming both ids and changes nothing on the learner. Without CURVE an actor id is a
  claim nobody checks, which is why that is allowed only on loopback (or explicitly).
"""

from __future__ import annotations

from serl.ports import is_loopback


class InsecureBindError(ValueError):
    """The learner was asked to listen on a network interface without CURVE authentication."""


def check_bind(host: str, curve: bool, allow_unauthenticated_network: bool = False) -> bool:
    """Whether binding `host` serves a network without authentication (the caller then warns,
    loudly); InsecureBindError if it would and `allow_unauthenticated_network` is not set."""
    if curve or is_loopback(host):
        return False
    if allow_unauthenticated_network:
        return True
    raise InsecureBindError(
        f"refusing to listen on {host!r} without CURVE: anyone who can reach it could send "
        "transitions under any actor id, take an actor's connection and read the policy weights. "
        "Make keys with `serl keys generate DIR` (one per actor: --actor NAME, named after its "
        "--actor.actor-id) and pass --transport.curve-keys DIR to the learner and the actors; or "
        "bind 127.0.0.1; or, on a network you trust completely, set "
        "--transport.allow-unauthenticated-network")


UNAUTHENTICATED_WARNING = (
    "SECURITY: serving on %s without CURVE (transport.allow_unauthenticated_network is set): "
    "anyone who can reach this machine can send transitions under any actor id, take an actor's "
    "connection and read the policy weights. Use `serl keys generate DIR` and "
    "--transport.curve-keys DIR instead")


def identity_refusal(key_name: str | None, claimed: str) -> str | None:
    """Why a CURVE connection authenticated as `key_name` may not act as actor `claimed` (None: it
    may). `key_name` None means the connection carries no authenticated key name at all."""
    if key_name == claimed:
        return None
    if key_name is None:
        return f"actor {claimed!r} refused: the connection has no authenticated CURVE key name"
    return (f"actor {claimed!r} refused: this connection's CURVE key is {key_name!r} (the "
            f"learner's authorized/{key_name}.key), and a key may act only as the actor id it was "
            f"generated for. Run this actor with --actor.actor-id {key_name}, or give it its own "
            f"key: `serl keys generate DIR --actor {claimed}`")
