"""serl: human-in-the-loop sample-efficient RL for Franka arms.

Importing the package registers its gymnasium environments (nothing else happens at import time).
"""

from serl.envs.registration import register_envs

register_envs()
