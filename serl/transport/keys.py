"""ZeroMQ CURVE keys: authentication and encryption between actors and the learner.

`generate_keys(DIR, names)` lays out what each machine needs:
    DIR/learner/learner.key_secret      the learner's key pair (stays on the GPU machine)
    DIR/learner/authorized/<name>.key   public keys of the actors the learner accepts
    DIR/actor/<name>.key_secret         an actor's key pair, and DIR/actor/learner.key, the
                                        learner's public key (copy DIR/actor to the robot PC)
The learner's data ROUTER and weights PUB are both CURVE servers, so an actor whose public key is
not in the authorized folder can neither send data nor receive weights: its connection never
completes.

A key is bound to one actor id: the name of its file. The learner accepts messages for actor
`<name>` only from a connection authenticated with `authorized/<name>.key`, so an actor runs with
`--actor.actor-id <name>` and its own `<name>.key_secret`; one key shared by several actors, or an
actor claiming another's id, is refused (see `serl.transport.security`). The default name is the
default actor id, `actor-0`.

The authorized folder is read again at every new connection, so a key added (`add_actor_keys`,
`serl keys add`) or removed while the learner runs counts from that actor's next connection on; a
removed key's live connection stays until it drops (restart the learner to cut it at once).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from serl.durable import fsync_directory, fsync_file, write_bytes
from serl.transport.config import DEFAULT_ACTOR_ID
from serl.transport.rate_log import RateLimitedLog

log = logging.getLogger("serl.transport.keys")
# a file name on every OS and an actor id the messages accept; "learner" is the learner's own file
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True)
class LearnerCurve:
    """The learner's side of CURVE."""

    secret_key_file: Path  # the learner's key pair (a zmq certificate with its secret key)
    authorized_keys_dir: Path  # folder of accepted actors' public keys (<actor id>.key files)

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
    def from_dir(cls, directory: str | Path, name: str = DEFAULT_ACTOR_ID) -> ActorCurve:
        """From the `actor` folder `generate_keys` made: the key pair called `name`."""
        directory = Path(directory)
        return cls(directory / f"{name}.key_secret", directory / "learner.key")

    @classmethod
    def for_actor(cls, directory: str | Path, actor_id: str) -> ActorCurve:
        """The key pair of actor `actor_id` in the `actor` folder (the only key the learner accepts
        for that id); FileNotFoundError naming the command that makes it if there is none."""
        curve = cls.from_dir(directory, actor_id)
        if not curve.secret_key_file.is_file():
            raise FileNotFoundError(
                f"no CURVE key for actor {actor_id!r}: {curve.secret_key_file} does not exist (a "
                f"key acts only as the actor id it is named after). Make one with `serl keys add "
                f"DIR {actor_id}` (or `serl keys generate DIR --actor {actor_id}`) and copy "
                f"DIR/actor/{actor_id}.key_secret here")
        return curve


def check_name(name: str) -> str:
    """`name` if it can name an actor's key; ValueError otherwise."""
    if not _NAME.fullmatch(name) or name == "learner":
        raise ValueError(f"{name!r} cannot name an actor key: use 1-200 letters, digits, '.', '_' "
                         "or '-' (not starting with '.', '_' or '-'), and not 'learner'")
    return name


def generate_keys(directory: str | Path,
                  actor_names: tuple[str, ...] = (DEFAULT_ACTOR_ID,)) -> dict[str, Path]:
    """Create the learner's key pair and one per actor name (see the module doc); refuses to
    overwrite keys. Returns {"learner": learner folder, "actor": actor folder}."""
    for name in actor_names:
        check_name(name)
    directory = Path(directory)
    learner_dir, actor_dir = directory / "learner", directory / "actor"
    if learner_dir.exists() or actor_dir.exists():
        raise FileExistsError(f"{directory} already holds keys; choose an empty folder (or add "
                              "actors to it with `serl keys add`)")
    (learner_dir / "authorized").mkdir(parents=True)
    actor_dir.mkdir(parents=True)
    learner_public, learner_secret = zmq.auth.create_certificates(learner_dir, "learner")
    write_bytes(actor_dir / "learner.key", Path(learner_public).read_bytes())
    os.chmod(learner_secret, 0o600)
    for path in (learner_public, learner_secret):  # zmq writes without fsync
        fsync_file(Path(path))
    add_actor_keys(directory, actor_names)
    fsync_directory(directory)
    return {"learner": learner_dir, "actor": actor_dir}


def add_actor_keys(directory: str | Path, actor_names: tuple[str, ...]) -> list[Path]:
    """Add a key pair per actor name to a folder `generate_keys` made (the learner picks them up
    at their next connection); FileExistsError if a name has one already. Returns the secret key
    files (to copy to the robot PCs)."""
    directory = Path(directory)
    learner_dir, actor_dir = directory / "learner", directory / "actor"
    authorized = learner_dir / "authorized"
    if not authorized.is_dir() or not (actor_dir / "learner.key").is_file():
        raise FileNotFoundError(f"{directory} holds no keys from `serl keys generate`")
    if len(set(actor_names)) != len(actor_names):
        raise ValueError(f"actor names repeat: {', '.join(actor_names)}")
    for name in actor_names:
        check_name(name)
        for path in (authorized / f"{name}.key", actor_dir / f"{name}.key_secret"):
            if path.exists():
                raise FileExistsError(f"{path} exists: actor {name!r} has a key already")
    secrets = []
    for name in actor_names:
        public, secret = zmq.auth.create_certificates(actor_dir, name)
        os.chmod(secret, 0o600)
        for path in (public, secret):  # a power cut must not leave empty keys
            fsync_file(Path(path))
        # atomic: the learner never reads half a key
        write_bytes(authorized / f"{name}.key", Path(public).read_bytes())
        secrets.append(Path(secret))
    for folder in (authorized, learner_dir, actor_dir):
        fsync_directory(folder)
    return secrets


def authorized_names(folder: Path, problems: RateLimitedLog | None = None) -> dict[bytes, str]:
    """{z85 public key: actor name} of the `<name>.key` files in `folder`. A file that cannot be
    read, or a key filed under two names, is left out (and reported to `problems`)."""
    names: dict[bytes, str] = {}
    repeated: set[bytes] = set()
    try:
        files = sorted(folder.glob("*.key"))
    except OSError:
        files = []
    for path in files:
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as err:
            if problems is not None:
                problems.log(logging.ERROR, ("unreadable", path.name),
                             "authorized key %s is unusable, ignored: %s", path, err)
            continue
        if public in names:
            repeated.add(public)
        names[public] = path.stem
    for public in repeated:  # which actor would it be? neither
        if problems is not None:
            problems.log(logging.ERROR, ("repeated", public),
                         "one public key is filed under several names in %s (one is %r): it "
                         "is refused under all of them", folder, names[public])
        del names[public]
    return names


class KeyNamedAuthenticator(ThreadAuthenticator):
    """ZeroMQ's authenticator accepting the keys in an authorized folder, and naming each
    connection after its key's file: a connection made with `authorized/<name>.key` carries the
    ZAP User-Id `<name>` on every message it sends (`frame.get("User-Id")`). The folder is read at
    every handshake, so keys added or removed while it runs count from the next connection on."""

    def __init__(self, context: zmq.Context, folder: Path):
        super().__init__(context)
        self.folder = Path(folder)
        self._names: dict[bytes, str] = {}
        self._problems = RateLimitedLog(log, interval=60.0)
        self.configure_curve_callback("*", self)  # `callback` below decides

    def callback(self, domain: str, z85_public_key: bytes) -> bool:
        """Accept a client key (ZeroMQ's credentials provider protocol, z85 text)."""
        # read here, used by curve_user_id right after
        self._names = authorized_names(self.folder, self._problems)
        if z85_public_key in self._names:
            return True
        self._problems.log(logging.WARNING, "unknown",
                           "refused a CURVE handshake with a key not in %s", self.folder)
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The actor name of an accepted key (called only after `callback` accepted it)."""
        return self._names[z85.encode(client_public_key)]


def start_authenticator(context: zmq.Context, curve: LearnerCurve) -> KeyNamedAuthenticator:
    """Start ZeroMQ's authenticator on `context`, accepting only the client keys in the authorized
    folder and naming connections after their key files."""
    folder = Path(curve.authorized_keys_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"authorized keys folder {folder} does not exist")
    auth = KeyNamedAuthenticator(context, folder)
    auth.start()
    return auth


def make_server(socket: zmq.Socket, curve: LearnerCurve) -> None:
    """Make `socket` (before bind) a CURVE server with the learner's key pair."""
    public, secret = zmq.auth.load_certificate(curve.secret_key_file)
    if secret is None:
        raise ValueError(f"{curve.secret_key_file} holds no secret key")
    socket.curve_secretkey, socket.curve_publickey, socket.curve_server = secret, public, True


def client_keys(curve: ActorCurve) -> tuple[bytes, bytes, bytes]:
    """(public, secret, learner's public) read from the key files; OSError or ValueError if they are
    unusable."""
    public, secret = zmq.auth.load_certificate(curve.secret_key_file)
    if secret is None:
        raise ValueError(f"{curve.secret_key_file} holds no secret key")
    server_public, _ = zmq.auth.load_certificate(curve.learner_public_key_file)
    return public, secret, server_public


def make_client(socket: zmq.Socket, keys: tuple[bytes, bytes, bytes]) -> None:
    """Make `socket` (before connect) a CURVE client that talks only to the learner's public key."""
    socket.curve_publickey, socket.curve_secretkey, socket.curve_serverkey = keys
