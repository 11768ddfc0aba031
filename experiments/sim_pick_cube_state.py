"""Lift a cube from the arm state alone (no cameras): the fastest task to train on a CPU."""

import dataclasses

from experiments.sim_pick_cube import CONFIG as PIXELS

CONFIG = dataclasses.replace(PIXELS, env=dataclasses.replace(PIXELS.env, image_obs=False))
