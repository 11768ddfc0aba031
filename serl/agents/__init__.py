"""Agents: RLPD-style SAC (`sac.py`) and its hybrid with a discrete grasp critic (`hybrid.py`)."""
