# GPU machine: the learner (`serl learner TASK --run NAME`), JAX with CUDA 12.
# Build from the repository root:  docker build -f docker/learner.Dockerfile -t serl-learner .
# Pinned tag; the jax[cuda12] wheels bring their own CUDA libraries, the base image brings a
# matching runtime.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    MUJOCO_GL=egl \
    VIRTUAL_ENV=/opt/serl/venv \
    PATH=/opt/serl/venv/bin:$PATH

RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev build-essential libegl1 libgl1-mesa-dri \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/serl/src
COPY pyproject.toml README.md ./
COPY serl ./serl
COPY robot_servers ./robot_servers
COPY experiments ./experiments
COPY hardware_configs ./hardware_configs
RUN python3 -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir -e '.[cuda]'

# Runs (checkpoints, buffers) and demos are volumes; the learner binds the transport ports given in
# the config.
CMD ["serl", "--help"]
