"""ROS 2 robot server and the simulated Franka driver (they import serl.robot; serl never imports
them)."""
