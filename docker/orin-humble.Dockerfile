# Jetson Orin (JetPack 6, L4T r36) with ROS 2 Humble. Build on the Jetson:
#   docker build -f docker/orin-humble.Dockerfile -t sage:orin .
#   docker run --runtime nvidia --network host --ipc host --device /dev/video0 \
#     -v /dev/shm:/dev/shm -v sage-data:/root/.local/share/sage sage:orin
# --ipc host and /dev/shm: the Fast DDS shared-memory transport and the CUDA mailbox.
FROM dustynv/ros:humble-ros-base-l4t-r36.2.0

RUN apt-get update && apt-get install -y --no-install-recommends \
      espeak-ng libportaudio2 libsndfile1 gstreamer1.0-tools python3-pip python3-venv \
      ros-humble-diagnostic-msgs ros-humble-visualization-msgs ros-humble-launch-ros \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sage
COPY . .
# onnxruntime-gpu for JetPack 6 comes from NVIDIA's Jetson wheel index; CPU fallback otherwise.
RUN pip3 install --no-cache-dir -c constraints.txt numpy pyyaml psutil typer rich onnx \
      opencv-python-headless scikit-image soundfile sounddevice smbus2 scipy sqlalchemy \
      alembic 'psycopg[binary]' rosbags mcap matplotlib tokenizers
RUN . /opt/ros/humble/setup.sh && colcon build --cmake-args -DCMAKE_BUILD_TYPE=Release
ENV ROS_DISTRO=humble
CMD ["bash", "-c", ". install/setup.bash && ros2 launch sage nano.launch.py"]
