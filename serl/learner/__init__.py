"""The learner, in parts (import from the submodules; this package imports nothing heavy):

- `config`: `LearnerConfig`, `DiskWriteError`, `ListenError` (no jax, flax or orbax).
- `intake`: receive, validate and store batches durably, acknowledge, retry failed writes, and the
  disk-error policy.
- `training`: the agent on its device mesh, sampling half online / half demo (and the prior share),
  prefetch, the update.
- `prior`: unlabelled prior episodes (`serl import-demos --prior`) rewarded by the task's classifier
  into a third buffer, sampled at `learner.prior_fraction` of each batch (default 0: no buffer).
- `publishing`: weights out under versioned, incarnation-stamped names.
- `bookkeeping`: checkpoints, resume and incarnation records, the progress file.
- `reporting`: the run monitor, TensorBoard scalars (and Weights & Biases), the live progress line.
- `wandb_config`, `wandb_sink`: the `learner.wandb` switch (no wandb import when off) and the sink
  that logs scalars, the evaluation curve, evaluation videos and the resolved config.
- `timing`: where the loop's wall time goes (the share outside `update`, by part).
- `loop`: the `Learner` that composes them.
- `build`: `build_learner`, the one way `serl learner` and `serl train --single-process` wire a
  learner to its transport (spaces from the env contract: no env is built).
"""
