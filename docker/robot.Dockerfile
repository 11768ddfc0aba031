# Robot PC: the robot server (robot_servers/franka_server.py), the actor with its cameras and SpaceMouse, and
# `serl check-rig`. The franka_ros2 controllers themselves run from Franka's own setup on the same host (real-time
# kernel); this image only talks to them over ROS 2 topics, so it runs with the host network (DDS discovery).
# Build from the repository root:  docker build -f docker/robot.Dockerfile -t serl-robot .
# Pinned tag; for byte-for-byte rebuilds replace it with its digest (ros:jazzy-ros-base-noble@sha256:...).
FROM ros:jazzy-ros-base-noble

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    MUJOCO_GL=egl \
    VIRTUAL_ENV=/opt/serl/venv \
    PATH=/opt/serl/venv/bin:$PATH

# EGL for the simulated driver's cameras, libusb for RealSense, hidapi for the SpaceMouse.
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-venv python3-dev build-essential libegl1 libgl1-mesa-dri libusb-1.0-0 libhidapi-hidraw0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/serl/src
COPY pyproject.toml README.md ./
COPY serl ./serl
COPY robot_servers ./robot_servers
COPY experiments ./experiments
COPY hardware_configs ./hardware_configs
RUN python3 -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir -e '.[ros,robot]'

# Rig files, keys, runs and demos come in as volumes (see docker/docker-compose.yml).
CMD ["serl", "check-rig", "hardware_configs/sim_panda.yaml"]
