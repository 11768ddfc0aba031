"""`RobotClient`: what an env uses to talk to the robot server (ZeroMQ DEALER, msgpack, per-request
timeouts).

Never REQ lock-step: a request that times out leaves no socket stuck; the socket is recreated (same
routing identity, so the server still sees the same owner) and a late reply to an old request is
recognised by its id and dropped. A client is used from one thread.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import zmq

from serl.robot import protocol
from serl.transport.codec import BadMessage
from serl.transport.keys import ActorCurve, client_keys, make_client


class RobotError(RuntimeError):
    """The server refused or failed a request; the message says why."""


class RobotFault(RobotError):
    """Refused because the robot is in fault (reflex, user stop, controller error); `recover()`
    clears it."""


class RobotTimeout(RobotError):
    """No reply within the request's timeout."""


class RobotBusy(RobotError):
    """Refused because a long operation (reset, recover, set_impedance) is still running; worth
    another try."""


class RobotUnsettled(RobotError):
    """A reset moved but did not settle at its pose in time (blocked, or a simulated arm running
    slower than real time); the arm holds where it is, and another reset is worth a try."""


# Refusals the server marks with a prefix ("busy: ...") and the exception each raises.
REFUSALS = {"busy": RobotBusy, "unsettled": RobotUnsettled}


class RobotClient:
    """One connection to a robot server. `curve`: the client's key pair and the server's public
    key."""

    def __init__(self, address: str, timeout_s: float = 1.0, curve: ActorCurve | None = None,
                 identity: bytes | None = None):
        self.address, self.timeout_s = address, float(timeout_s)
        self.identity = identity or b"robot-client-" + os.urandom(8).hex().encode()
        self._keys = client_keys(curve) if curve is not None else None
        self._context = zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._next_id = 1
        self._connect()

    def _connect(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, self.identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_REPLY_BYTES)
        if self._keys is not None:
            make_client(sock, self._keys)
        sock.connect(self.address)
        self._socket = sock

    def request(
        self, op: str, args: dict[str, Any] | None = None, timeout_s: float | None = None
    ) -> dict:
        """Send one request and wait for its reply's result; raises RobotError, RobotFault or
        RobotTimeout."""
        if self._socket is None:
            raise RobotError("client is closed")
        req_id, self._next_id = self._next_id, self._next_id + 1
        self._socket.send(protocol.encode_request(req_id, op, args))
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._socket.poll(int(left * 1000) + 1):
                if time.monotonic() < deadline:
                    continue
                self._connect()  # drop whatever the old socket still holds
                raise RobotTimeout(
                    f"robot server at {self.address} did not answer {op!r} within {timeout:.2f} s"
                )
            try:
                reply = protocol.decode_reply(self._socket.recv())
            except BadMessage as err:
                raise RobotError(f"malformed reply from the robot server: {err}") from None
            if reply["id"] is not None and reply["id"] != req_id:
                # the late reply of a request that timed out (None: the server could not read our
                # id)
                continue
            if reply["ok"]:
                return reply.get("result") or {}
            error = str(reply.get("error", "unknown error"))
            if reply.get("fault"):
                raise RobotFault(error)
            raise REFUSALS.get(error.split(":", 1)[0], RobotError)(error)

    # ---------- the robot-server API ----------
    def get_state(self) -> dict:
        """tcp_pose (7), tcp_vel (6), tcp_force (3), tcp_torque (3), q (7), dq (7) as float64
        arrays; gripper_pos in [0, 1], gripper_moving, mode ("ok" | "hold" | "fault"), fault, hold,
        succeed (sim only, else None), stamp (driver clock, s)."""
        try:
            return protocol.decode_state(self.request("get_state"))
        except BadMessage as err:
            raise RobotError(f"malformed state from the robot server: {err}") from None

    def set_pose(self, pose: np.ndarray) -> dict:
        """Command a TCP target (xyz + quat xyzw). The reply's `target` is what the server actually
        sent, after its own clipping; `hold` says why the arm is held instead, if it is."""
        result = self.request("set_pose", {"pose": np.asarray(pose, dtype=np.float64)})
        result["target"] = protocol.as_vector(result.get("target"), 7, "target")
        return result

    def gripper(self, command: str) -> dict:
        """"open" or "close"; returns at once, `get_state()["gripper_moving"]` reports progress."""
        return self.request("gripper", {"command": command})

    def reset(
        self,
        joint_reset: bool = False,
        timeout_s: float = 20.0,
        pose: np.ndarray | None = None,
        task: bool = False,
    ) -> dict:
        """Interpolated move to the rig's reset pose (or `pose`, clipped), blocking until it is
        done. `joint_reset`: first move the joints to the rig's joint configuration. `task`: the
        simulated driver also places the task's objects afresh (seeded)."""
        args: dict[str, Any] = {"joint_reset": bool(joint_reset), "task": bool(task)}
        if pose is not None:
            args["pose"] = np.asarray(pose, dtype=np.float64)
        return self.request("reset", args, timeout_s=timeout_s)

    def recover(self, timeout_s: float = 15.0) -> dict:
        """Clear the fault; the server re-arms at the measured pose, never a stale target. The
        wait is above the server's own bound on the job (clearing errors 5 s, then up to 2 s for a
        fresh fault-free state): a shorter one gave up on recoveries a loaded CPU had slowed."""
        return self.request("recover", timeout_s=timeout_s)

    def set_impedance(self, params: dict[str, float]) -> dict:
        """Any of translational/rotational stiffness and damping ratio, validated against the rig's
        ranges."""
        return self.request("set_impedance", {"params": {k: float(v) for k, v in params.items()}})

    def health(self) -> dict:
        return self.request("health")

    def release(self) -> dict:
        """Give up ownership of the arm, so another client may take it."""
        return self.request("release")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self) -> RobotClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
