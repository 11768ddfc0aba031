# Robot PC: the robot server (robot_servers/franka_server.py), the actor with its cameras and
# SpaceMouse, and `serl check-rig`. The arm is driven through libfranka: the `robot` extra installs
# franky-control from PyPI (its wheel bundles libfranka for robot server version 10; other firmware
# needs the matching wheel, docs/real-robot.md), whose 1 kHz loop needs the host's real-time kernel
# and the compose file's rtprio/memlock. A rig on franka_ros2 instead talks to Franka's controllers
# over ROS 2 topics with the franka_msgs built below; either way the image runs on the host
# network.
# Build from the repository root:  docker build -f docker/robot.Dockerfile -t serl-robot .
# Pinned tag; for byte-for-byte rebuilds replace it with its digest
# (ros:jazzy-ros-base-noble@sha256:...).
#
# One ROS 2: everything ROS comes from apt under /opt/ros/jazzy (rclpy, the standard messages,
# ros2_control's messages) plus franka_msgs built here from franka_ros2's source. The pip `ros-*`
# wheels (the `ros` extra) are not installed, so there is one rclpy build. The venv sees the system
# site-packages, and pip is held to the numpy the apt message packages were compiled against
# (docker/robot-constraints.txt).
FROM ros:jazzy-ros-base-noble

# The franka_ros2 release of the controllers on this robot PC (franka_msgs must match them); see
# docs/real-robot.md.
ARG FRANKA_ROS2_VERSION=v3.5.2

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    MUJOCO_GL=egl \
    VIRTUAL_ENV=/opt/serl/venv \
    PATH=/opt/serl/venv/bin:$PATH

# control_msgs/controller_manager_msgs for the joint reset; EGL for the simulated driver's cameras,
# libusb for RealSense, hidapi for the SpaceMouse; git and colcon to build franka_msgs.
RUN apt-get update && apt-get install -y --no-install-recommends \
        git python3-venv python3-dev python3-colcon-common-extensions build-essential \
        ros-jazzy-control-msgs ros-jazzy-controller-manager-msgs \
        libegl1 libgl1-mesa-dri libusb-1.0-0 libhidapi-hidraw0 \
    && rm -rf /var/lib/apt/lists/*

# franka_msgs only (the robot state, error recovery and gripper actions the franka_ros2 adapter
# uses).
RUN git clone --depth 1 --branch "$FRANKA_ROS2_VERSION" \
        https://github.com/frankarobotics/franka_ros2.git /tmp/franka_ros2 \
    && mkdir -p /opt/franka_ws/src && mv /tmp/franka_ros2/franka_msgs /opt/franka_ws/src/ \
    && rm -rf /tmp/franka_ros2 \
    && . /opt/ros/jazzy/setup.sh && cd /opt/franka_ws \
    && colcon build --packages-select franka_msgs \
    && rm -rf /opt/franka_ws/build /opt/franka_ws/log

WORKDIR /opt/serl/src
COPY pyproject.toml README.md ./
COPY docker/robot-constraints.txt docker/robot_entrypoint.sh ./docker/
COPY serl ./serl
COPY robot_servers ./robot_servers
COPY experiments ./experiments
COPY hardware_configs ./hardware_configs
RUN python3 -m venv --system-site-packages "$VIRTUAL_ENV" \
    && pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir -c docker/robot-constraints.txt -e '.[robot]'

# Every command runs with /opt/ros/jazzy and the franka_msgs workspace sourced. Rig files, keys,
# runs and demos come in as volumes (see docker/docker-compose.yml).
ENTRYPOINT ["/opt/serl/src/docker/robot_entrypoint.sh"]
CMD ["serl", "check-rig", "hardware_configs/sim_panda.yaml"]
