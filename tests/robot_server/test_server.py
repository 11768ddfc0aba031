"""The robot server against the simulated Franka driver, both real rclpy nodes in subprocesses on a
private loopback ROS domain, driven by raw client requests (no env in between): whatever the client
sends, the arm stays inside the rig's limits. One launch for the module; each test starts from a
reset."""

from __future__ import annotations

import math
import time

import msgpack
import numpy as np
import pytest
import zmq
from rig_helpers import RosProbe, command_for, owned_client, pose, rig_config_for_tests, wait_until

from robot_servers.launch import launch_sim_rig
from serl import geometry as g
from serl.robot import protocol
from serl.robot.client import RobotClient, RobotError, RobotFault
from serl.robot.safety import cone_coordinates


@pytest.fixture(scope="module")
def rig():
    with launch_sim_rig(rig_config_for_tests(), timeout_s=60) as rig:
        yield rig
    # both processes are gone
    assert rig.driver.poll() is not None and rig.server.poll() is not None


@pytest.fixture(scope="module")
def probe(rig):
    p = RosProbe(rig.domain_id)
    yield p
    p.close()


@pytest.fixture
def client(rig):
    with owned_client(rig.address) as c:
        yield c


@pytest.mark.timeout(60)
def test_targets_outside_the_box_are_clipped_by_the_server(client, rig):
    box_max = np.array(rig.config.safety.box_max)
    start = pose(client)
    far = start.copy()
    far[[0, 2]] = [1.2, 0.8]  # 0.5 m beyond the box in x and z
    reply = command_for(client, far, seconds=3.0)
    assert reply["clipped"] and np.all(reply["target"][:3] <= box_max + 1e-9)
    measured = pose(client)
    assert np.all(measured[:3] <= box_max + 0.005), measured  # the arm stayed in the box ...
    # ... having reached its wall
    assert measured[0] > box_max[0] - 0.01 and measured[2] > box_max[2] - 0.01


@pytest.mark.timeout(60)
def test_orientations_outside_the_cone_are_clipped(client, rig):
    limits = rig.config.safety.limits()
    start = pose(client)
    tilted = g.quat_mul(g.rotvec_to_quat([1.2, 0.0, 0.0]), start[3:])  # twice the cone's half angle
    reply = command_for(client, np.concatenate([start[:3], tilted]), seconds=2.5)
    assert reply["clipped"]
    tilt, _ = cone_coordinates(pose(client)[3:], limits)
    assert limits.cone_half_angle - 0.1 < tilt < limits.cone_half_angle + 0.03, tilt


@pytest.mark.timeout(60)
def test_far_targets_are_clipped_to_the_error_bound(client, rig):
    safety = rig.config.safety
    start = pose(client)
    far = start.copy()
    far[1] += 0.2
    reply = client.set_pose(far)
    limit = min(safety.max_position_error, safety.max_step_m)
    assert reply["clipped"] and np.linalg.norm(reply["target"][:3] - start[:3]) <= limit + 1e-6
    time.sleep(0.8)  # the last target held by the watchdog: the arm moved at most the bound
    assert np.linalg.norm(pose(client)[:3] - start[:3]) <= limit + 0.003


@pytest.mark.timeout(60)
def test_watchdog_holds_when_the_client_goes_silent(client, rig):
    start = pose(client)
    target = start.copy()
    for i in range(4):  # a target moving 5 cm per command, ahead of the arm
        target[0] = start[0] + 0.05 * (i + 1)
        client.set_pose(target)
        time.sleep(0.05)
    time.sleep(0.5)  # silence
    held = pose(client)
    state = client.get_state()
    assert state["mode"] == "hold" and state["hold"].startswith("watchdog"), state["hold"]
    # What the server now holds is a measured pose, no longer the client's target.
    assert np.linalg.norm(state["target"][:3] - held[:3]) < 0.003
    time.sleep(0.5)
    assert np.linalg.norm(pose(client)[:3] - held[:3]) < 0.001  # stopped: < 1 mm in the next 500 ms
    assert client.health()["counters"]["watchdog_holds"] >= 1


@pytest.mark.timeout(60)
def test_reflex_faults_and_recovery_never_lunges_to_the_stale_target(client, probe, rig):
    start = pose(client)
    stale = start.copy()
    stale[1] -= 0.15
    for _ in range(3):
        stale_sent = client.set_pose(stale)["target"]
    assert probe.trigger(f"{rig.config.ros.sim_namespace}/inject_reflex").success
    assert wait_until(lambda: client.get_state()["mode"] == "fault", 2.0)
    assert client.get_state()["fault"] == "reflex"
    for call in (
        lambda: client.set_pose(stale),
        lambda: client.gripper("close"),
        lambda: client.reset(),
        lambda: client.set_impedance({"translational_stiffness": 1000.0}),
    ):
        with pytest.raises(RobotFault, match="reflex"):
            call()
    time.sleep(0.3)
    at_recovery = pose(client)
    assert client.recover()["mode"] == "hold"
    time.sleep(1.0)
    after = pose(client)
    assert np.linalg.norm(after[:3] - at_recovery[:3]) < 0.003, (after, at_recovery)
    assert (
        np.linalg.norm(after[:3] - stale_sent[:3])
        > np.linalg.norm(at_recovery[:3] - stale_sent[:3]) - 0.003
    )
    # serving again
    assert client.get_state()["mode"] == "hold" and client.set_pose(after)["hold"] is None


@pytest.mark.timeout(60)
def test_user_stop_is_a_fault_too(client, probe, rig):
    assert probe.trigger(f"{rig.config.ros.sim_namespace}/inject_user_stop").success
    assert wait_until(lambda: client.get_state()["fault"] == "user_stop", 2.0)
    with pytest.raises(RobotFault):
        client.set_pose(pose(client))
    client.recover()
    assert client.get_state()["mode"] == "hold"


def _raw_request(rig, payload: bytes, frames: int = 1) -> dict:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTING_ID, b"raw-tester")  # one owner across the raw sockets
    try:
        sock.connect(rig.address)
        sock.send_multipart([payload] * frames)
        assert sock.poll(3000), "no reply to a bad request"
        return msgpack.unpackb(sock.recv(), raw=False)
    finally:
        sock.close()


@pytest.mark.timeout(60)
def test_bad_requests_get_error_replies_and_the_server_keeps_serving(client, rig):
    client.release()
    cases = {
        b"\xc1 not msgpack": "msgpack",
        msgpack.packb([1, 2, 3]): "must be a map",
        msgpack.packb({"op": "get_state"}): "integer 'id'",
        msgpack.packb({"id": 5, "op": "fly"}): "unknown op 'fly'",
        msgpack.packb(
            {"id": 6, "op": "set_pose", "args": {"pose": [0.5, 0.0]}}
        ): "pose must have 7 numbers",
        msgpack.packb({"id": 7, "op": "set_pose", "args": {"pose": "up"}}): "pose must be a list",
        msgpack.packb({"id": 8, "op": "set_pose", "args": {"speed": 1}}): "unknown argument",
        msgpack.packb(
            {"id": 9, "op": "gripper", "args": {"command": "squeeze"}}
        ): "'open' or 'close'",
        msgpack.packb({"id": 10, "op": "get_state", "args": 3}): "'args' must be a map",
        b"x" * (rig.config.robot.max_request_bytes + 1): "size",
    }
    for payload, expected in cases.items():
        reply = _raw_request(rig, payload)
        assert reply["ok"] is False and expected in reply["error"], (expected, reply)
    assert (
        "expected 1 frame"
        in _raw_request(rig, msgpack.packb({"id": 1, "op": "health"}), frames=2)["error"]
    )
    assert _raw_request(rig, protocol.encode_request(11, "release"))["ok"]
    nan_pose = pose(client)
    nan_pose[2] = math.nan
    with pytest.raises(RobotError, match="NaN"):
        client.set_pose(nan_pose)
    with pytest.raises(RobotError, match="zero norm"):
        client.set_pose(np.array([0.5, 0, 0.2, 0, 0, 0, 0]))
    with pytest.raises(RobotError, match="size"):  # oversized through the client too: 1 MB of pose
        client.request("set_pose", {"pose": np.zeros(1 << 17)})
    state = client.get_state()  # still serving, still the owner
    assert state["mode"] in ("ok", "hold") and np.all(np.isfinite(state["tcp_pose"]))
    assert client.health()["counters"]["bad_requests"] >= 8  # those refused before reaching an op


@pytest.mark.timeout(60)
def test_a_second_client_is_refused_until_the_owner_is_silent_or_releases(client, rig):
    with RobotClient(rig.address, timeout_s=2.0) as other:
        client.get_state()
        with pytest.raises(RobotError, match="owned by another client"):
            other.get_state()
        with pytest.raises(RobotError, match="owned by another client"):
            other.set_pose(pose(client))
        assert other.health()["owned"]  # health is open to anyone
        time.sleep(rig.config.robot.owner_timeout_s + 0.2)  # the owner went silent
        other.get_state()
        with pytest.raises(RobotError, match="owned by another client"):
            client.get_state()
        other.release()
    client.get_state()


@pytest.mark.timeout(60)
def test_impedance_is_validated_against_the_rig_ranges(client):
    with pytest.raises(
        RobotError, match=r"translational_stiffness = 50000.0 is outside the rig's range"
    ):
        client.set_impedance({"translational_stiffness": 50000.0})
    with pytest.raises(RobotError, match="unknown impedance parameter 'nullspace'"):
        client.set_impedance({"nullspace": 1.0})
    with pytest.raises(RobotError, match="finite"):
        client.request("set_impedance", {"params": {"rotational_stiffness": math.inf}})
    params = client.set_impedance({"translational_stiffness": 1500.0})["params"]
    assert params["translational_stiffness"] == 1500.0
    assert (
        client.set_impedance({"translational_stiffness": 2000.0})["params"][
            "translational_stiffness"
        ]
        == 2000.0
    )


@pytest.mark.timeout(90)
def test_external_wrench_over_the_limit_holds_and_reports(client, rig):
    spot = pose(client)
    spot[:3] = [0.35, 0.2, 0.05]  # away from where the cube can be
    command_for(client, spot, seconds=3.0)
    press = spot.copy()
    press[2] = -0.03  # into the table
    held = None
    for _ in range(60):
        reply = client.set_pose(press)
        if reply["hold"] is not None:
            held = reply["hold"]
            break
        time.sleep(0.05)
    assert held is not None and "external force" in held, (
        "pressing into the table never tripped the limit"
    )
    state = client.get_state()
    assert state["mode"] == "hold" and "over the limit 25.0 N" in state["hold"]
    assert client.health()["counters"]["wrench_holds"] >= 1
    time.sleep(0.5)  # holding the measured pose: the push stops
    assert np.linalg.norm(client.get_state()["tcp_force"]) < rig.config.safety.max_external_force


@pytest.mark.timeout(60)
def test_gripper_is_asynchronous_and_reports_progress(client):
    t0 = time.monotonic()
    client.gripper("close")
    assert time.monotonic() - t0 < 0.1  # returns at once
    assert client.get_state()["gripper_moving"]
    assert wait_until(lambda: client.get_state()["gripper_pos"] < 0.05, 3.0)
    assert wait_until(lambda: not client.get_state()["gripper_moving"], 1.0)
    client.gripper("open")
    assert wait_until(lambda: client.get_state()["gripper_pos"] > 0.95, 3.0)


@pytest.mark.timeout(60)
def test_reset_moves_to_the_reset_pose_and_places_the_task(client, probe, rig):
    start = pose(client)
    away = start.copy()
    away[:3] += [0.05, 0.05, -0.05]
    command_for(client, away, seconds=1.0)
    reply = client.reset(task=True, joint_reset=True, timeout_s=20)
    assert reply["error_m"] < rig.config.reset.settle_tolerance
    assert np.allclose(pose(client)[:3], rig.config.reset.tcp_xyz, atol=0.006)
    assert reply["task"]["object"] == "cube" and len(reply["task"]["pos"]) == 3
    state = client.get_state()
    assert state["succeed"] is False and state["mode"] == "hold"

    # The driver's joint reset on its own (the server called it first): the joints go to the
    # configured posture.
    assert probe.trigger(f"{rig.config.ros.sim_namespace}/joint_reset", timeout_s=20).success
    time.sleep(0.1)
    assert np.allclose(client.get_state()["q"], rig.config.reset.joint_reset, atol=0.01)


@pytest.mark.timeout(60)
def test_state_and_camera_topics_meet_their_rates(rig, probe):
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import Image

    from robot_servers import ros_msgs as rm

    seen: dict[str, list] = {"pose": [], "front": [], "wrist": []}
    subs = [
        probe.node.create_subscription(
            PoseStamped,
            rig.config.ros.current_pose,
            lambda m: seen["pose"].append(time.time()),
            rm.STATE_QOS,
        )
    ]
    for name in ("front", "wrist"):
        subs.append(
            probe.node.create_subscription(
                Image,
                rig.config.cameras[name].topic,
                lambda m, n=name: seen[n].append(
                    (time.time(), rm.from_stamp(m.header.stamp), m.encoding, m.height, m.width)
                ),
                rm.IMAGE_QOS,
            )
        )
    try:
        assert wait_until(lambda: all(seen.values()), 5.0)
        for values in seen.values():
            values.clear()
        time.sleep(2.0)
        assert len(seen["pose"]) / 2.0 >= 90  # >= 100 Hz, less the odd late tick on a loaded CPU
        for name in ("front", "wrist"):
            frames = seen[name]
            assert len(frames) / 2.0 >= 9, len(frames)
            received, stamp, encoding, h, w = frames[-1]
            assert (encoding, h, w) == ("rgb8", 128, 128) and 0 <= received - stamp < 0.1
    finally:
        for sub in subs:
            probe.node.destroy_subscription(sub)
