# Jetson Thor (JetPack 7) with ROS 2 Jazzy. Build on the Thor:
#   docker build -f docker/thor-jazzy.Dockerfile -t sage:thor .
#   docker run --runtime nvidia --network host --ipc host -v /dev/shm:/dev/shm sage:thor
FROM ros:jazzy-ros-base

RUN apt-get update && apt-get install -y --no-install-recommends \
      espeak-ng libportaudio2 libsndfile1 python3-pip python3-venv \
      ros-jazzy-diagnostic-msgs ros-jazzy-visualization-msgs ros-jazzy-launch-ros \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sage
COPY . .
RUN pip3 install --break-system-packages --no-cache-dir -c constraints.txt numpy pyyaml \
      psutil typer rich onnx opencv-python-headless scikit-image soundfile sounddevice smbus2 \
      scipy sqlalchemy alembic 'psycopg[binary]' rosbags mcap matplotlib tokenizers
RUN . /opt/ros/jazzy/setup.sh && colcon build --cmake-args -DCMAKE_BUILD_TYPE=Release
CMD ["bash", "-c", ". install/setup.bash && ros2 launch sage thor.launch.py"]
