"""`serl serve-policy FILE`: a policy file's deterministic policy behind a ROUTER socket
(`messages`). One thread owns the socket; every request is answered (an `action` or an `error`)
and nothing a client sends can stop it. A client's requests that queued up while the policy
was busy are not all answered: only the newest is computed (the older ones' clients have given
up on them). Loopback by default; another interface only with CURVE
(`--curve-keys DIR`, made by `serl keys generate DIR`), as the learner."""

from __future__ import annotations

import logging
import threading

import numpy as np
import zmq

from serl.data.schema import TransitionSpec
from serl.envs.base_action import checked_action
from serl.serving import messages as m
from serl.transport.rate_log import RateLimitedLog
from serl.transport.wire import BadMessage

log = logging.getLogger("serl.serving")


class PolicyServer:
    """Serves `policy` (a `serl.agents.policy_file.PolicyFile`) on `host:port` (0: a free port,
    read back from `.port`) until `close()`; `curve`: a `LearnerCurve` (needed off loopback)."""

    def __init__(self, policy, host: str = "127.0.0.1", port: int = 0, curve=None):
        import jax

        from serl.agents.policy_file import task_spaces
        from serl.transport.keys import make_server, start_authenticator
        from serl.transport.security import check_bind

        check_bind(host, curve is not None)
        self.policy, self.identity = policy, policy.identity
        spec_json, _ = task_spaces(policy.config)
        self.spec = TransitionSpec.from_json(spec_json)
        self._evaluate, self._params = policy.policy_function(), jax.device_put(policy.params)
        # compiled now for one observation: a client's first step must not wait on it
        self._evaluate(self._params, {k: np.zeros(s, d)
                                      for k, (s, d) in self.spec.observation_spec.items()})
        self.counters = {"requests": 0, "errors": 0, "bad_messages": 0, "refused": 0,
                         "superseded": 0}
        self._ctx = zmq.Context()
        self._auth = start_authenticator(self._ctx, curve) if curve is not None else None
        self._socket = self._ctx.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, m.MAX_BYTES)
        if curve is not None:
            make_server(self._socket, curve)
        try:
            self._socket.bind(f"tcp://{host}:{port or '*'}")
        except zmq.ZMQError as err:
            self._close_context()
            raise OSError(f"cannot serve on {host}:{port} ({err}): choose another --port") from err
        self.port = int(self._socket.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
        self._log, self._stop = RateLimitedLog(log, 10.0), False
        self._thread = threading.Thread(target=self._run, name="serl-policy-server", daemon=True)

    def start(self) -> PolicyServer:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """The serving thread runs (it only ends at `close`)."""
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5.0)
        self._close_context()

    def _close_context(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        self._ctx.destroy(linger=0)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stop:
            if not poller.poll(100):
                continue
            for rid, kind, message in self._newest_requests():
                try:
                    self._answer(rid, kind, message)
                except Exception as err:  # noqa: BLE001 -- nothing a client sends stops the server
                    self._bad(err)

    def _bad(self, err: Exception) -> None:
        self.counters["bad_messages"] += 1
        self._log.log(logging.WARNING, "bad", "dropped a bad request: %s", err)

    def _newest_requests(self, limit: int = 256) -> list[tuple[bytes, str, dict]]:
        """The messages waiting now, parsed, but of each client's `act` requests only its newest:
        an older one's deadline passed while it waited (answering it would delay the fresh one)."""
        waiting = []
        for _ in range(limit):
            try:
                rid, *frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                if len(frames) != 1:
                    raise BadMessage("envelope", f"{len(frames)} frames, expected 1")
                waiting.append((rid, *m.parse(frames[0], m.CLIENT_KINDS)))
            except Exception as err:  # noqa: BLE001
                self._bad(err)
        newest = {rid: k for k, (rid, kind, _) in enumerate(waiting) if kind == "act"}
        kept = [w for k, w in enumerate(waiting) if w[1] != "act" or newest[w[0]] == k]
        self.counters["superseded"] += len(waiting) - len(kept)
        return kept

    def _answer(self, rid: bytes, kind: str, message: dict) -> None:
        if kind == "hello":
            return self._hello(rid, message["spec"])
        request = m.request_id(message["id"])
        obs = m.decode_obs(message["obs"], message["n"], self.spec)
        self.counters["requests"] += 1
        try:
            action = checked_action(self._evaluate(self._params, obs), self.spec.action_dim)
        except Exception as err:  # noqa: BLE001 -- one failed request must not stop the server
            self.counters["errors"] += 1
            reply = m.pack("error", id=request, reason=f"{type(err).__name__}: {err}"[:500])
        else:
            reply = m.pack("action", id=request, action=m.encode_array(action.astype(np.float32)))
        self._socket.send_multipart([rid, reply])

    def _hello(self, rid: bytes, spec) -> None:
        ours = self.spec.to_json()
        if spec != ours:
            self.counters["refused"] += 1
            reply = m.pack("refuse", reason=f"this server's policy ({self.identity}) sees the "
                           f"observation spec {str(ours)[:400]}, the client sends "
                           f"{str(spec)[:400]}")
        else:
            reply = m.pack("welcome", identity=self.identity, action_dim=self.spec.action_dim)
        self._socket.send_multipart([rid, reply])

