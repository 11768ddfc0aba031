"""Arms the robot server can drive: the simulated driver (tested) and franka_ros2."""
