"""Join a ROS 2 domain for a while; print (JSON) the topics with publishers, messages received.

Run as a separate process (in a network namespace) by test_dds_host_only.py:
    python dds_probe.py TOPIC SECONDS
Stops early once TOPIC has a publisher and delivers messages.
"""
from __future__ import annotations

import json
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Imu


def main(topic: str, seconds: float) -> None:
    rclpy.init()
    node = rclpy.create_node('sage_dds_probe')
    received = []
    node.create_subscription(Imu, topic, lambda m: received.append(1), qos_profile_sensor_data)
    end = time.monotonic() + seconds
    published: set[str] = set()  # topics with a publisher (this probe only subscribes)
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.2)
        published |= {name for name, _ in node.get_topic_names_and_types()
                      if node.count_publishers(name) > 0}
        if topic in published and received:
            break
    print(json.dumps({'published': sorted(published), 'messages': len(received)}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]))
