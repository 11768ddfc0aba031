"""What talks to a robot arm: safety limits shared by every env and the robot server."""
