"""Environments: the simulated Panda tasks, the real Franka env, and the wrapper stack the policy
sees."""
