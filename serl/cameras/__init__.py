"""Cameras behind one interface: OpenCV, RealSense, ROS 2 image topics."""
