# syntax=docker/dockerfile:1
# fwbench in one image, two variants picked by a build argument:
#   docker build -t fwbench:cpu .                              any x86-64 machine
#   docker build --build-arg VARIANT=cuda -t fwbench:cuda .    NVIDIA GPUs (driver for CUDA 12)
#   docker run --rm --gpus all -v "$PWD/results:/data/results" fwbench:cuda run --device cuda
# The install steps are the README's set-up, the same script CI runs: `npm ci`, then `npm run setup`
# (python-runners/setup.sh, then `fwbench setup tfjs-node`). The cuda variant sets
# FWBENCH_SETUP_DEVICE=cuda, so setup.sh installs the CUDA builds of PyTorch and TensorFlow plus
# the CUDA 11 libraries that only tfjs-node-gpu's libtensorflow 2.9 loads: each engine runs in its
# own worker process, and the orchestrator puts FWBENCH_LD_LIBRARY_PATH_TFJS_NODE_GPU in front of
# that worker's LD_LIBRARY_PATH only, the others keep CUDA 12. Results go to /data/results, the
# folder to mount.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
ARG VARIANT=cpu

FROM ${NODE_IMAGE} AS node

FROM ${NODE_IMAGE} AS base-cpu
# The CPU wheel of torch (PyPI's default Linux wheel is the CUDA build). The image's npm 10 does
# not read allowScripts in package.json: skip onnxruntime-node's CUDA download explicitly.
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    ONNXRUNTIME_NODE_INSTALL=skip

FROM ${CUDA_IMAGE} AS base-cuda
# Node 20 from the official image (the same build as the cpu variant).
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
# onnxruntime-node's install script fetches its CUDA 12 execution provider (setup.sh runs it for
# the cuda variant); tfjs-node-gpu's fetches libtensorflow 2.9.1 for GPU during npm ci (both need
# the internet the build has).
ENV FWBENCH_SETUP_DEVICE=cuda \
    ONNXRUNTIME_NODE_INSTALL=cuda12 \
    FWBENCH_LD_LIBRARY_PATH_TFJS_NODE_GPU=/opt/fwbench/python-runners/.cuda11/nvidia/cuda_runtime/lib:/opt/fwbench/python-runners/.cuda11/nvidia/cublas/lib:/opt/fwbench/python-runners/.cuda11/nvidia/cudnn/lib:/opt/fwbench/python-runners/.cuda11/nvidia/cufft/lib:/opt/fwbench/python-runners/.cuda11/nvidia/curand/lib:/opt/fwbench/python-runners/.cuda11/nvidia/cusolver/lib:/opt/fwbench/python-runners/.cuda11/nvidia/cusparse/lib

FROM base-${VARIANT} AS fwbench
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-dev g++ make ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/fwbench
COPY . .
RUN npm ci --no-audit --no-fund && npm run setup \
 && ln -s /opt/fwbench/bin/fwbench.js /usr/local/bin/fwbench
WORKDIR /data
VOLUME /data/results
ENTRYPOINT ["fwbench"]
CMD ["--help"]
