"""franka_ros2's names and QoS (jazzy v3.4.0 source) against what the robot server's ROS 2
adapters and the simulated driver create, read back from a real rclpy graph on a private domain;
the franka_ros2 adapter's controller check and install error; the J(q)·dq twist against
MuJoCo's."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.qos import QoSCompatibility, ReliabilityPolicy, qos_check_compatible

from robot_servers.adapters import franka_ros2 as fr
from robot_servers.adapters.joint_twist import tcp_twist
from serl.robot.hardware_config import load_hardware_config
from serl.robot.rig_sections import RosSection
from serl.robot.ros_domain import private_domain_id

ROOT = Path(__file__).resolve().parents[2]
SIM_RIG = ROOT / "hardware_configs" / "sim_panda.yaml"
TEMPLATE = ROOT / "hardware_configs" / "franka_fr3_template.yaml"
# franka_ros2 v3.4.0: franka_robot_state_broadcaster.hpp (k*Topic, "~/" of the controller
# franka_robot_state_broadcaster), gripper_action_server.cpp and gripper.launch.py (node
# franka_gripper), franka_action_server.cpp (node action_server), the controller manager's node.
UPSTREAM = {
    "current_pose": "/franka_robot_state_broadcaster/current_pose",
    "joint_states": "/franka_robot_state_broadcaster/measured_joint_states",
    "external_wrench": "/franka_robot_state_broadcaster/external_wrench_in_base_frame",
    "robot_mode": "/franka_robot_state_broadcaster/robot_state",
    "gripper_joint_states": "/franka_gripper/joint_states",
    "gripper_namespace": "/franka_gripper",
    "error_recovery": "/action_server/error_recovery",
    "controller_manager": "/controller_manager",
}
# rclcpp::QoS(1).best_effort() since 3.3.0 (the full robot_state stays SystemDefaultsQoS)
BEST_EFFORT = ("current_pose", "joint_states", "external_wrench")
BE, REL = ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE


@pytest.fixture
def graph():
    """The simulated driver (not started: its endpoints exist) and a robot-server node with the
    sim adapter, in one private context."""
    from robot_servers.adapters.sim import SimArmAdapter
    from robot_servers.sim_franka_driver import SimFrankaDriver

    cfg = load_hardware_config(SIM_RIG)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=private_domain_id(102, 214))
    driver = SimFrankaDriver(cfg, context=context)
    server = rclpy.create_node("franka_server", context=context, start_parameter_services=False)
    arm = SimArmAdapter(server, cfg)
    try:
        yield cfg, server
    finally:
        arm.close()
        for node in (server, driver.mover, driver):
            node.destroy_node()
        rclpy.shutdown(context=context)


def endpoints(node, topic: str, kind: str, owner: str, timeout_s: float = 5.0) -> list:
    """`owner`'s publishers or subscriptions on `topic` as the graph reports them."""
    query = getattr(node, f"get_{kind}_info_by_topic")
    deadline = time.monotonic() + timeout_s
    while True:
        found = [i for i in query(topic) if i.node_name == owner]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def reliability(node, topic: str, kind: str, owner: str) -> ReliabilityPolicy | None:
    found = endpoints(node, topic, kind, owner)
    assert len(found) <= 1, f"{owner} has {len(found)} {kind} on {topic}"
    return found[0].qos_profile.reliability if found else None


@pytest.mark.timeout(30)
def test_driver_and_server_use_franka_ros2_qos_and_every_endpoint_matches(graph):
    cfg, server = graph
    ros = cfg.ros
    for key in BEST_EFFORT:
        topic = getattr(ros, key)
        assert reliability(server, topic, "publishers", "sim_franka_driver") == BE, topic
        assert reliability(server, topic, "subscriptions", "franka_server") == BE, topic
    # franka_gripper publishes its joint states reliable (depth 1); the server takes either
    assert reliability(server, ros.gripper_joint_states, "publishers", "sim_franka_driver") == REL
    assert reliability(server, ros.gripper_joint_states, "subscriptions", "franka_server") == BE
    # franka_ros2's controllers subscribe SystemDefaultsQoS (reliable): so does the driver, and
    # only a reliable publisher reaches them
    assert reliability(server, ros.equilibrium_pose, "subscriptions", "sim_franka_driver") == REL
    assert reliability(server, ros.equilibrium_pose, "publishers", "franka_server") == REL
    # Every topic one side subscribes to, the other publishes, with a compatible QoS.
    pairs = [("franka_server", "sim_franka_driver"), ("sim_franka_driver", "franka_server")]
    for reader, writer in pairs:
        for topic, _ in server.get_subscriber_names_and_types_by_node(reader, "/"):
            if topic.startswith("/parameter_events"):
                continue
            subs = endpoints(server, topic, "subscriptions", reader)
            pubs = endpoints(server, topic, "publishers", writer)
            assert pubs, f"{reader} subscribes to {topic}, which {writer} does not publish"
            verdict, why = qos_check_compatible(pubs[0].qos_profile, subs[0].qos_profile)
            assert verdict == QoSCompatibility.OK, f"{topic}: {why}"


def test_rig_files_name_franka_ros2s_topics():
    template = RosSection(**yaml.safe_load(TEMPLATE.read_text())["ros"])
    for name, ros in (("RosSection defaults", RosSection()), ("template", template)):
        for key, topic in UPSTREAM.items():
            assert getattr(ros, key) == topic, (name, key)
        assert "measured_end_effector_twist" not in str(ros.model_dump()), name
    sim = load_hardware_config(SIM_RIG).ros
    for key in (*BEST_EFFORT, "gripper_joint_states"):
        assert getattr(sim, key) == UPSTREAM[key], key


def test_the_controller_check_names_what_the_adapter_needs():
    cfg = load_hardware_config(SIM_RIG)
    name, topic = cfg.ros.impedance_controller, cfg.ros.equilibrium_pose
    ours = "lab_controllers/EquilibriumFollower"
    broadcaster = ("active", "franka_robot_state_broadcaster/FrankaRobotStateBroadcaster")
    assert fr.controller_problem(cfg, {name: ("active", ours)}, [name]) is None
    cases = {
        "is not loaded": ({"franka_robot_state_broadcaster": broadcaster}, [name]),
        fr.EXAMPLE_TYPE: ({name: ("active", fr.EXAMPLE_TYPE)}, [name]),
        f"does not subscribe to {topic}": ({name: ("active", ours)}, ["ros2cli"]),
        "is inactive, not active": ({name: ("inactive", ours)}, [name]),
    }
    for says, (controllers, subscribers) in cases.items():
        problem = fr.controller_problem(cfg, controllers, subscribers)
        assert problem is not None and says in problem, problem
    needs = fr.controller_problem(cfg, {}, [])
    assert topic in needs and "libfranka" in needs
    assert fr.EXAMPLE_CONTROLLER in needs and "rotational_damping_ratio" in needs


def test_without_franka_msgs_the_adapter_says_what_to_install():
    try:
        import franka_msgs  # noqa: F401

        pytest.skip("franka_msgs is installed here")
    except ImportError:
        pass
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=private_domain_id(102, 214))
    node = rclpy.create_node("franka_server", context=context, start_parameter_services=False)
    try:
        with pytest.raises(ImportError, match="franka_msgs and controller_manager_msgs"):
            fr.FrankaRos2Adapter(node, load_hardware_config(TEMPLATE))
        assert not node.get_subscriber_names_and_types_by_node("franka_server", "/")
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.mark.timeout(60)
def test_the_joint_twist_is_mujocos_tcp_twist():
    from robot_servers.sim_arm import SimArm
    from serl.envs.sim.arm import mujoco

    arm = SimArm(load_hardware_config(SIM_RIG))
    rng, data = np.random.default_rng(3), arm.sim.data
    for _ in range(5):
        data.qpos[:7] += rng.uniform(-0.4, 0.4, 7)
        data.qvel[:7] = rng.uniform(-1.5, 1.5, 7)
        mujoco.mj_forward(arm.sim.model, data)
        r = arm.read()
        np.testing.assert_allclose(tcp_twist(r.q, r.dq, r.pos), r.twist, atol=1e-9)
