#!/bin/bash
# Entry point of the robot image: ROS 2 Jazzy from apt and the franka_msgs workspace built in the
# image, sourced before the command, so rclpy and every message package come from /opt (one ROS 2,
# no pip ros wheels).
set -e
source /opt/ros/jazzy/setup.bash
source /opt/franka_ws/install/setup.bash
exec "$@"
