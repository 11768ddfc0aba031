"""The actor, in parts (import from the submodules; this package imports nothing heavy):

- `config`: `ActorConfig` and `LearnerRefused` (no jax, flax, orbax or mujoco).
- `episode`: one transition in the schema of `serl.data`, the per-episode statistics, the
  evaluation video.
- `counters`: the counters that never go backwards (env steps, episode ids, the operator's
  take-over scale), kept durably on disk.
- `frames`: camera frames as the learner decodes them (the wire codec's round trip), for the
  policy and the in-process learner alike.
- `loop`: the `Actor` that steps the env with the newest weights and adds every transition.
- `build`: `build_actor`, the one way `serl train`, `serl train --single-process` and `serl actor`
  wire an actor to its transport.
"""
