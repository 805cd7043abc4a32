# Jetson Thor (JetPack 7.0, L4T r38.2, SBSA CUDA) with ROS 2 Jazzy, Python 3.12. Build on the
# Thor:
#   docker build -f docker/thor-jazzy.Dockerfile -t sage:thor .
#   docker compose -f docker/compose.yaml up thor     (devices, volumes, rtprio: compose.yaml)
# The base is NVIDIA's TensorRT container 25.08 (Ubuntu 24.04, Python 3.12): CUDA 13.0,
# cuDNN 9.12, TensorRT 10.13, the JetPack 7.0 versions. No published image ships
# onnxruntime-gpu for Thor, so it comes from the Jetson AI Lab index built for CUDA 13.0
# (ORT_GPU_INDEX); OpenCV with GStreamer is Ubuntu's python3-opencv (PyPI's has no GStreamer).
# docker/README.md lists the versions side by side (the labels below;
# src/sage/test/test_jetson_images.py keeps the two in step).
FROM nvcr.io/nvidia/tensorrt:25.08-py3
LABEL org.sage.jetpack="7.0" org.sage.l4t="r38.2" \
      org.sage.cuda="13.0" org.sage.cudnn="9.12" org.sage.tensorrt="10.13" \
      org.sage.ort.source="Jetson AI Lab sbsa/cu130" org.sage.ort.cuda="13.0" \
      org.sage.ort.cudnn="9" org.sage.ort.tensorrt="10.13" \
      org.sage.opencv.source="Ubuntu 24.04 python3-opencv"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# ROS 2 Jazzy from packages.ros.org; OpenCV with GStreamer (and its plugins) from Ubuntu.
# Not pinned: ROS and Ubuntu apt repositories drop superseded versions, so exact pins break
# rebuilds; the Python stack, where versions matter to SAGE, is pinned below.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
    && curl -fsSL https://raw.githubusercontent.com/ros/rosdistro/master/ros.key \
         -o /usr/share/keyrings/ros-archive-keyring.gpg \
    && echo "deb [arch=arm64 signed-by=/usr/share/keyrings/ros-archive-keyring.gpg]" \
         "http://packages.ros.org/ros2/ubuntu noble main" > /etc/apt/sources.list.d/ros2.list \
    && apt-get update && apt-get install -y --no-install-recommends \
      ros-jazzy-ros-base ros-jazzy-diagnostic-msgs ros-jazzy-visualization-msgs \
      ros-jazzy-launch-ros python3-colcon-common-extensions \
      python3-opencv gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
      espeak-ng libportaudio2 libsndfile1 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sage
COPY . .
# Every other runtime dependency, pinned for aarch64 / Python 3.12 (scripts/check_image_pins.py
# resolves them in CI); numpy stays 1.x, the ABI Ubuntu's OpenCV was built for. The
# constraints file refuses PyPI's onnxruntime and OpenCV, so a dependency that asks for them
# fails the build instead of shadowing the GPU / GStreamer builds.
RUN pip3 install --break-system-packages --no-cache-dir -c docker/constraints-thor-py312.txt \
      -r docker/requirements-runtime.txt \
    && pip3 install --break-system-packages --no-cache-dir --no-deps \
      -c docker/constraints-thor-py312.txt -r docker/requirements-nodeps.txt
# GPU inference: NVIDIA's onnxruntime-gpu built for JetPack 7 (SBSA, CUDA 13.0).
# Not pinned: the index holds the builds made for this CUDA, which fixes the version.
ARG ORT_GPU_INDEX=https://pypi.jetson-ai-lab.io/sbsa/cu130
# hadolint ignore=DL3013
RUN pip3 install --break-system-packages --no-cache-dir --no-deps --index-url "$ORT_GPU_INDEX" \
      onnxruntime-gpu
RUN . /opt/ros/jazzy/setup.sh && colcon build --cmake-args -DCMAKE_BUILD_TYPE=Release
# Fail the build, not the robot: the GPU onnxruntime and GStreamer OpenCV are the live ones.
RUN . install/setup.sh && python3 docker/check_base.py
ENV ROS_DISTRO=jazzy
CMD ["bash", "-c", ". install/setup.bash && ros2 launch sage thor.launch.py"]
