"""Datasets that leave the project and come back: the LeRobotDataset v3.0 format (Hugging Face
LeRobot's parquet + mp4 layout), written from a run's buffers or a demos folder and read back into a
task's demonstrations. See docs/datasets.md for the feature names and the checks against upstream.

- `lerobot_format`: the v3.0 folder layout, info.json, the task and episode tables;
- `features`: this project's transitions as LeRobot features (names of the state and the action);
- `stats`: per-feature statistics, streamed; `video`: mp4 streams through the bundled ffmpeg;
- `writer`, `sources`, `export`: `serl export`; `reader`, `import_map`, `importing`:
  `serl import-demos`.

Nothing here unpickles: parquet, JSON, YAML (safe loader) and mp4 only. Importing this package
imports nothing heavy; pyarrow is imported by the modules that read or write parquet.
"""
