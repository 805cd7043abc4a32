# Jetson Orin (JetPack 6, L4T r36) with ROS 2 Humble, Python 3.10. Build on the Jetson:
#   docker build -f docker/orin-humble.Dockerfile -t sage:orin .
#   docker run --runtime nvidia --network host --ipc host --device /dev/video0 \
#     -v /dev/shm:/dev/shm -v sage-data:/root/.local/share/sage sage:orin
# --ipc host and /dev/shm: the Fast DDS shared-memory transport and the CUDA mailbox.
FROM dustynv/ros:humble-ros-base-l4t-r36.2.0

# Not pinned: ROS and Ubuntu apt repositories drop superseded versions, so exact pins break
# rebuilds; the Python stack, where versions matter to SAGE, is pinned below.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends \
      espeak-ng libportaudio2 libsndfile1 gstreamer1.0-tools python3-pip python3-venv \
      ros-humble-diagnostic-msgs ros-humble-visualization-msgs ros-humble-launch-ros \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sage
COPY . .
# Every runtime dependency with pins that resolve for aarch64 / Python 3.10
# (scripts/check_image_pins.py proves it in CI).
RUN pip3 install --no-cache-dir -c docker/constraints-orin-py310.txt \
      -r docker/requirements-runtime.txt \
    && pip3 install --no-cache-dir --no-deps -c docker/constraints-orin-py310.txt \
      -r docker/requirements-nodeps.txt
# GPU inference: PyPI's aarch64 onnxruntime is CPU only, so the CUDA and TensorRT execution
# providers come from onnxruntime-gpu built for JetPack 6 (CUDA 12.6) on the Jetson AI Lab
# index (ORT_GPU_INDEX). Without it the encoders fall back to CPUExecutionProvider loudly: one
# WARN log line and a WARN on their /diagnostics (providers= shows what is live).
# Not pinned: the index holds the builds made for this JetPack's CUDA, which fixes the version.
ARG ORT_GPU_INDEX=https://pypi.jetson-ai-lab.io/jp6/cu126
# hadolint ignore=DL3013
RUN pip3 uninstall -y onnxruntime \
    && pip3 install --no-cache-dir --index-url "$ORT_GPU_INDEX" onnxruntime-gpu
RUN . /opt/ros/humble/setup.sh && colcon build --cmake-args -DCMAKE_BUILD_TYPE=Release
ENV ROS_DISTRO=humble
CMD ["bash", "-c", ". install/setup.bash && ros2 launch sage nano.launch.py"]
