"""SAGE sensor nodes: camera, microphone and IMU with device, file and synthetic backends.

Pure modules (no rclpy): timeline, pacing, color, resample, audio_core, imu_core, scene,
samples, *_backends, *_params, capture. Node shells: camera_node, microphone_node, imu_node.
"""
