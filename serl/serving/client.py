"""`ServedBasePolicy`: a base policy answered by a `serl serve-policy` server, called like
`FileBasePolicy`. Each call is one request with its own id and a deadline: an answer that is late,
an error, for another request or of the wrong shape, not finite or out of range is never used and
the call raises `BasePolicyError` (the env wrapper then holds the arm). A late answer of an earlier
request is dropped when it arrives."""

from __future__ import annotations

import time

import numpy as np
import zmq

from serl.data.schema import TransitionSpec
from serl.envs.base_action import BasePolicyError, checked_action
from serl.envs.contract import BASE_ACTION_KEY
from serl.serving import messages as m
from serl.transport.wire import BadMessage


class ServedBasePolicy:
    """The base served at `address` (tcp://host:port) for observations of `spec` (without the base
    entry). `deadline_s` bounds one step's request; batches (demo annotation) get
    `batch_deadline_s`. `curve`: an `ActorCurve` (needed off loopback)."""

    def __init__(self, address: str, spec: TransitionSpec, deadline_s: float = 0.1,
                 batch_deadline_s: float = 30.0, hello_timeout_s: float = 10.0, curve=None):
        self.address, self.spec, self.action_dim = address, spec, spec.action_dim
        self.deadline_s, self.batch_deadline_s = deadline_s, batch_deadline_s
        self._ctx = zmq.Context()
        self._socket = self._ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        # never queue a request for a server that is not connected, never block on a send
        self._socket.setsockopt(zmq.IMMEDIATE, 1)
        self._socket.setsockopt(zmq.SNDTIMEO, 0)
        if curve is not None:
            from serl.transport.keys import client_keys

            public, secret, server = client_keys(curve)
            self._socket.curve_publickey, self._socket.curve_secretkey = public, secret
            self._socket.curve_serverkey = server
        self._socket.connect(address)
        self._next_id = 0
        self.counters = {"late": 0, "bad": 0, "errors": 0, "unsent": 0}
        try:
            self._send_within(m.pack("hello", spec=spec.to_json()), hello_timeout_s, "the hello")
            kind, message = self._receive(lambda k, msg: k in ("welcome", "refuse"),
                                          hello_timeout_s, "the hello")
        except BaseException:
            self.close()
            raise
        if kind == "refuse":
            self.close()
            raise BasePolicyError(f"the base policy at {address} refused: {message['reason']}")
        if message["action_dim"] != self.action_dim:
            self.close()
            raise BasePolicyError(f"the base policy at {address} acts in {message['action_dim']} "
                                  f"dims, this task in {self.action_dim}")
        self.identity = str(message["identity"])

    def __call__(self, obs: dict) -> np.ndarray:
        obs = {k: v for k, v in obs.items() if k != BASE_ACTION_KEY}
        lead = np.shape(obs["state"])[:-1]
        n = int(lead[0]) if lead else 0
        request, self._next_id = self._next_id, self._next_id + 1
        deadline = self.batch_deadline_s if n else self.deadline_s
        self._send_within(m.pack("act", id=request, n=n, deadline_ms=int(1000 * deadline),
                                 obs=m.encode_obs(obs)), deadline, f"request {request}")
        kind, message = self._receive(lambda k, msg: msg.get("id") == request, deadline,
                                      f"request {request}")
        if kind == "error":
            self.counters["errors"] += 1
            raise BasePolicyError(f"the base policy at {self.address} failed: "
                                  f"{message['reason']}")
        try:
            action = m.decode_action(message["action"], n, self.action_dim)
        except BadMessage as err:
            self.counters["bad"] += 1
            raise BasePolicyError(f"the base policy at {self.address} answered an unusable "
                                  f"action ({err.detail})") from None
        return checked_action(action, self.action_dim)

    def _send_within(self, data: bytes, timeout_s: float, what: str) -> None:
        """Send once the server's connection is up (IMMEDIATE), for up to `timeout_s`."""
        end = time.monotonic() + timeout_s
        while True:
            try:
                return self._socket.send(data, zmq.NOBLOCK)
            except zmq.Again:
                if time.monotonic() >= end:
                    self.counters["unsent"] += 1
                    raise BasePolicyError(
                        f"the base policy at {self.address} is not connected: {what} not sent "
                        f"within {1000 * timeout_s:.0f} ms") from None
                time.sleep(0.005)

    def _receive(self, wanted, timeout_s: float, what: str) -> tuple[str, dict]:
        """The first message `wanted(kind, fields)` accepts within `timeout_s`; others dropped."""
        end = time.monotonic() + timeout_s
        while (left := end - time.monotonic()) > 0:
            if not self._socket.poll(max(1, int(1000 * left))):
                break
            try:
                kind, message = m.parse(self._socket.recv(), m.SERVER_KINDS)
            except BadMessage:
                self.counters["bad"] += 1
                continue
            if wanted(kind, message):
                return kind, message
            self.counters["late"] += 1  # an answer to an earlier request, past its deadline
        raise BasePolicyError(f"the base policy at {self.address} did not answer {what} within "
                              f"{1000 * timeout_s:.0f} ms")

    def close(self) -> None:
        self._ctx.destroy(linger=0)
