# Jetson Orin (JetPack 6.1, L4T r36.4) with ROS 2 Humble, Python 3.10. Build on the Jetson:
#   docker build -f docker/orin-humble.Dockerfile -t sage:orin .
#   docker compose -f docker/compose.yaml up orin     (devices, volumes, rtprio: compose.yaml)
# The base is jetson-containers' l4t-ml for r36.4.0: CUDA 12.6, cuDNN 9.3, TensorRT 10.3, and
# the onnxruntime-gpu and OpenCV (GStreamer on) that project built against them. SAGE takes
# both from the base: PyPI's aarch64 onnxruntime is CPU only and PyPI's OpenCV has no
# GStreamer (the CSI camera). docker/README.md lists the versions side by side (the labels
# below; src/sage/test/test_jetson_images.py keeps the two in step).
FROM dustynv/l4t-ml:r36.4.0
LABEL org.sage.jetpack="6.1" org.sage.l4t="r36.4.0" \
      org.sage.cuda="12.6" org.sage.cudnn="9.3" org.sage.tensorrt="10.3" \
      org.sage.ort.source="base image" org.sage.ort.cuda="12.6" org.sage.ort.cudnn="9.3" \
      org.sage.ort.tensorrt="10.3" org.sage.opencv.source="base image"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# ROS 2 Humble from packages.ros.org (the base is Ubuntu 22.04 without ROS).
# Not pinned: ROS and Ubuntu apt repositories drop superseded versions, so exact pins break
# rebuilds; the Python stack, where versions matter to SAGE, is pinned below.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
    && curl -fsSL https://raw.githubusercontent.com/ros/rosdistro/master/ros.key \
         -o /usr/share/keyrings/ros-archive-keyring.gpg \
    && echo "deb [arch=arm64 signed-by=/usr/share/keyrings/ros-archive-keyring.gpg]" \
         "http://packages.ros.org/ros2/ubuntu jammy main" > /etc/apt/sources.list.d/ros2.list \
    && apt-get update && apt-get install -y --no-install-recommends \
      ros-humble-ros-base ros-humble-diagnostic-msgs ros-humble-visualization-msgs \
      ros-humble-launch-ros python3-colcon-common-extensions \
      espeak-ng libportaudio2 libsndfile1 gstreamer1.0-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sage
COPY . .
# Every other runtime dependency, pinned for aarch64 / Python 3.10 (scripts/check_image_pins.py
# resolves them in CI). The constraints file refuses PyPI's onnxruntime and OpenCV, so a
# dependency that asks for them fails the build instead of shadowing the base's.
RUN pip3 install --no-cache-dir -c docker/constraints-orin-py310.txt \
      -r docker/requirements-runtime.txt \
    && pip3 install --no-cache-dir --no-deps -c docker/constraints-orin-py310.txt \
      -r docker/requirements-nodeps.txt
RUN . /opt/ros/humble/setup.sh && colcon build --cmake-args -DCMAKE_BUILD_TYPE=Release
# Fail the build, not the robot: the base's GPU onnxruntime and GStreamer OpenCV survived.
RUN . install/setup.sh && python3 docker/check_base.py
ENV ROS_DISTRO=humble
CMD ["bash", "-c", ". install/setup.bash && ros2 launch sage nano.launch.py"]
