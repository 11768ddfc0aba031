"""The MuJoCo Panda: scene, controller, tasks and rendering.

Importing the package (or its `config`) does not import MuJoCo: a task config loads without it. The
modules that drive the simulator import `mujoco` from `serl.envs.sim.gl`, which picks the OpenGL
backend first.
"""
