# x86 development image: the same two commands as the README, no ROS distribution needed
# (ROS 2 Kilted comes from PyPI wheels into .venv).
#   docker build -f docker/dev-x86.Dockerfile -t sage:dev . && docker run -it sage:dev make test
FROM python:3.11-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends make sudo \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sage
COPY . .
RUN bash scripts/install.sh
CMD ["make", "run"]
