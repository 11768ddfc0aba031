"""ZeroMQ CURVE keys: authentication and encryption between actors and the learner.

`generate_keys(DIR)` lays out what each machine needs:
    DIR/learner/learner.key_secret   the learner's key pair (stays on the GPU machine)
    DIR/learner/authorized/<actor>.key   public keys of the actors the learner accepts (add or remove files)
    DIR/actor/<actor>.key_secret     an actor's key pair, and DIR/actor/learner.key, the learner's public key
                                     (copy DIR/actor to the robot PC)
The learner's data ROUTER and weights PUB are both CURVE servers, so an actor whose public key is not in the
authorized folder can neither send data nor receive weights: its connection never completes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


@dataclass(frozen=True)
class LearnerCurve:
    """The learner's side of CURVE."""

    secret_key_file: Path  # the learner's key pair (a zmq certificate with its secret key)
    authorized_keys_dir: Path  # folder of accepted actors' public keys (*.key files)

    @classmethod
    def from_dir(cls, directory: str | Path) -> LearnerCurve:
        """From the `learner` folder `generate_keys` made."""
        directory = Path(directory)
        return cls(directory / "learner.key_secret", directory / "authorized")


@dataclass(frozen=True)
class ActorCurve:
    """An actor's side of CURVE."""

    secret_key_file: Path  # the actor's key pair
    learner_public_key_file: Path  # the learner's public key

    @classmethod
    def from_dir(cls, directory: str | Path, name: str = "actor") -> ActorCurve:
        """From the `actor` folder `generate_keys` made."""
        directory = Path(directory)
        return cls(directory / f"{name}.key_secret", directory / "learner.key")


def generate_keys(directory: str | Path, actor_names: tuple[str, ...] = ("actor",)) -> dict[str, Path]:
    """Create the learner's key pair and one per actor name (see the module doc); refuses to overwrite keys.
    Returns {"learner": learner folder, "actor": actor folder}."""
    directory = Path(directory)
    learner_dir, actor_dir = directory / "learner", directory / "actor"
    if learner_dir.exists() or actor_dir.exists():
        raise FileExistsError(f"{directory} already holds keys; choose an empty folder")
    (learner_dir / "authorized").mkdir(parents=True)
    actor_dir.mkdir(parents=True)
    learner_public, learner_secret = zmq.auth.create_certificates(learner_dir, "learner")
    shutil.copy(learner_public, actor_dir / "learner.key")
    os.chmod(learner_secret, 0o600)
    for name in actor_names:
        public, secret = zmq.auth.create_certificates(actor_dir, name)
        os.chmod(secret, 0o600)
        shutil.copy(public, learner_dir / "authorized" / f"{name}.key")
    return {"learner": learner_dir, "actor": actor_dir}


def start_authenticator(context: zmq.Context, curve: LearnerCurve) -> ThreadAuthenticator:
    """Start ZeroMQ's authenticator on `context`, accepting only the client keys in the authorized folder."""
    folder = Path(curve.authorized_keys_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"authorized keys folder {folder} does not exist")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(folder))
    return auth


def make_server(socket: zmq.Socket, curve: LearnerCurve) -> None:
    """Make `socket` (before bind) a CURVE server with the learner's key pair."""
    public, secret = zmq.auth.load_certificate(curve.secret_key_file)
    if secret is None:
        raise ValueError(f"{curve.secret_key_file} holds no secret key")
    socket.curve_secretkey, socket.curve_publickey, socket.curve_server = secret, public, True


def client_keys(curve: ActorCurve) -> tuple[bytes, bytes, bytes]:
    """(public, secret, learner's public) read from the key files; OSError or ValueError if they are unusable."""
    public, secret = zmq.auth.load_certificate(curve.secret_key_file)
    if secret is None:
        raise ValueError(f"{curve.secret_key_file} holds no secret key")
    server_public, _ = zmq.auth.load_certificate(curve.learner_public_key_file)
    return public, secret, server_public


def make_client(socket: zmq.Socket, keys: tuple[bytes, bytes, bytes]) -> None:
    """Make `socket` (before connect) a CURVE client that talks only to the learner's public key."""
    socket.curve_publickey, socket.curve_secretkey, socket.curve_serverkey = keys
