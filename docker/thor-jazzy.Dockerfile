# Jetson Thor (JetPack 7) with ROS 2 Jazzy, Python 3.12. Build on the Thor:
#   docker build -f docker/thor-jazzy.Dockerfile -t sage:thor .
#   docker run --runtime nvidia --network host --ipc host -v /dev/shm:/dev/shm sage:thor
FROM ros:jazzy-ros-base

# Not pinned: ROS and Ubuntu apt repositories drop superseded versions, so exact pins break
# rebuilds; the Python stack, where versions matter to SAGE, is pinned below.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends \
      espeak-ng libportaudio2 libsndfile1 python3-pip python3-venv \
      ros-jazzy-diagnostic-msgs ros-jazzy-visualization-msgs ros-jazzy-launch-ros \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sage
COPY . .
# Every runtime dependency with pins that resolve for aarch64 / Python 3.12
# (scripts/check_image_pins.py proves it in CI). Ubuntu 24.04's Python is externally managed.
RUN pip3 install --break-system-packages --no-cache-dir -c docker/constraints-thor-py312.txt \
      -r docker/requirements-runtime.txt \
    && pip3 install --break-system-packages --no-cache-dir --no-deps \
      -c docker/constraints-thor-py312.txt -r docker/requirements-nodeps.txt
# GPU inference: PyPI's aarch64 onnxruntime is CPU only, so the CUDA and TensorRT execution
# providers come from onnxruntime-gpu built for JetPack 7 (SBSA, CUDA 13.0) on the Jetson AI
# Lab index (ORT_GPU_INDEX). Without it the encoders fall back to CPUExecutionProvider loudly:
# one WARN log line and a WARN on their /diagnostics (providers= shows what is live).
# Not pinned: the index holds the builds made for this JetPack's CUDA, which fixes the version.
ARG ORT_GPU_INDEX=https://pypi.jetson-ai-lab.io/sbsa/cu130
# hadolint ignore=DL3013
RUN pip3 uninstall --break-system-packages -y onnxruntime \
    && pip3 install --break-system-packages --no-cache-dir --index-url "$ORT_GPU_INDEX" \
      onnxruntime-gpu
RUN . /opt/ros/jazzy/setup.sh && colcon build --cmake-args -DCMAKE_BUILD_TYPE=Release
CMD ["bash", "-c", ". install/setup.bash && ros2 launch sage thor.launch.py"]
