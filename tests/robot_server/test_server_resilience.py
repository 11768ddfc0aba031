"""The robot server when things around it fail: a driver that stops publishing (controller error), a
server that stalls past the client's timeout (the client reconnects and keeps ownership), and CURVE
keeping strangers out. Real processes, paused with SIGSTOP; the rig runs with CURVE on."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from rig_helpers import owned_client, pose, rig_config_for_tests, wait_until

from robot_servers.launch import launch_sim_rig
from serl.commands.check_rig import check_robot
from serl.robot.client import RobotClient, RobotError, RobotFault, RobotTimeout
from serl.transport.config import DEFAULT_ACTOR_ID
from serl.transport.keys import ActorCurve, generate_keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    return generate_keys(base / "rig"), generate_keys(base / "stranger")


@pytest.fixture(scope="module")
def rig(keys):
    raw = rig_config_for_tests()
    raw["robot"].update(
        state_timeout_s=1.0,
        curve_server_secret_key=str(keys[0]["learner"] / "learner.key_secret"),
        curve_authorized_keys_dir=str(keys[0]["learner"] / "authorized"),
    )
    with launch_sim_rig(raw, timeout_s=60, curve=ActorCurve.from_dir(keys[0]["actor"])) as rig:
        yield rig


@pytest.fixture
def client(rig, keys):
    with owned_client(rig.address, ActorCurve.from_dir(keys[0]["actor"])) as c:
        yield c


@pytest.mark.timeout(60)
def test_a_silent_driver_is_a_controller_error_fault(client, rig):
    before = pose(client)
    os.kill(rig.driver.pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: client.get_state()["mode"] == "fault", 3.0)
        state = client.get_state()
        assert state["fault"].startswith("controller error: no robot state")
        with pytest.raises(RobotFault, match="controller error"):
            client.set_pose(before)
    finally:
        os.kill(rig.driver.pid, signal.SIGCONT)
    assert client.recover()["mode"] == "hold"
    time.sleep(0.3)
    assert np.linalg.norm(pose(client)[:3] - before[:3]) < 0.003
    client.set_pose(before)  # serving again


@pytest.mark.timeout(60)
def test_a_timed_out_client_reconnects_and_keeps_the_arm(client, rig, keys):
    client.get_state()
    os.kill(rig.server.pid, signal.SIGSTOP)
    try:
        with pytest.raises(RobotTimeout, match="did not answer 'get_state'"):
            client.request("get_state", timeout_s=0.3)
    finally:
        os.kill(rig.server.pid, signal.SIGCONT)
    # The late reply to the timed-out request is never mistaken for this one's; the reconnected
    # socket is still the owner (a new identity would be refused within owner_timeout_s), and a
    # second client is refused meanwhile.
    state = client.get_state()
    assert state["mode"] in ("ok", "hold") and "tcp_pose" in state
    with RobotClient(
        rig.address, timeout_s=2.0, curve=ActorCurve.from_dir(keys[0]["actor"])
    ) as other:
        with pytest.raises(RobotError, match="owned by another client"):
            other.get_state()
    assert "tcp_pose" in client.get_state()


@pytest.mark.timeout(60)
def test_curve_keeps_out_clients_without_an_authorized_key(client, rig, keys):
    client.release()
    for curve in (None, ActorCurve.from_dir(keys[1]["actor"])):
        with (
            RobotClient(rig.address, timeout_s=0.5, curve=curve) as stranger,
            pytest.raises(RobotTimeout),
        ):
            stranger.health()
    assert client.health()["has_state"]  # the authorized client still gets through
    # check-rig with the rig file's client keys sees the CURVE server up
    robot = rig.config.robot.model_copy(
        update={
            "curve_client_secret_key": keys[0]["actor"] / f"{DEFAULT_ACTOR_ID}.key_secret",
            "curve_server_public_key": keys[0]["actor"] / "learner.key",
        }
    )
    check = check_robot(rig.config.model_copy(update={"robot": robot}), timeout_s=2.0)
    assert check.up and "state age" in check.detail, check.detail
