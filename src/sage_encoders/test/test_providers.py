"""Execution provider choice and a loud GPU -> CPU fallback (this machine has no GPU)."""
from __future__ import annotations

import time

import onnxruntime as ort
import pytest

from sage_encoders.runtime import fallback_note, resolve_providers

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402

from sage_encoders.vision_encoder_node import VisionEncoderNode  # noqa: E402
CPU_ONLY = 'CUDAExecutionProvider' not in ort.get_available_providers()
needs_cpu_only = pytest.mark.skipif(not CPU_ONLY, reason='this onnxruntime has CUDA')


@needs_cpu_only
def test_missing_gpu_provider_is_one_log_line_naming_asked_and_available() -> None:
    lines: list[str] = []
    out = resolve_providers('tensorrt,cuda,cpu', lines.append)
    assert out == ['CPUExecutionProvider']
    assert len(lines) == 1
    assert 'TensorrtExecutionProvider,CUDAExecutionProvider' in lines[0]
    assert 'available: ' in lines[0] and 'running on CPUExecutionProvider' in lines[0]


def test_fallback_note_names_lost_gpu_providers_only() -> None:
    assert fallback_note('CPUExecutionProvider', ['CPUExecutionProvider']) == ''
    assert fallback_note('cuda,cpu', ['CUDAExecutionProvider', 'CPUExecutionProvider']) == ''
    note = fallback_note('trt,cuda,cpu', ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    assert 'asked TensorrtExecutionProvider' in note and 'CUDAExecutionProvider,CPU' in note


@needs_cpu_only
def test_encoder_asked_for_cuda_reports_cpu_fallback_on_diagnostics_and_rosout(
        ros_domain) -> None:
    ctx = Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    ex = SingleThreadedExecutor(context=ctx)
    peer = rclpy.create_node('peer', context=ctx)
    diags: list = []
    logs: list = []
    peer.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    # /rosout is transient-local: the line logged while the model loads reaches a late reader.
    rosout_qos = QoSProfile(depth=1000, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    peer.create_subscription(Log, '/rosout', logs.append, rosout_qos)
    ex.add_node(peer)
    node = None
    try:
        node = VisionEncoderNode(context=ctx, parameter_overrides=[
            Parameter('providers', value='CUDAExecutionProvider,CPUExecutionProvider'),
            Parameter('diagnostics_period', value=0.2)])
        ex.add_node(node)

        def warned(got: list) -> list:
            return [m for m in got if m.name == 'vision_encoder' and m.level == Log.WARN
                    and 'execution providers' in m.msg]

        def ours() -> list:
            return [s for d in diags for s in d.status if s.name == 'sage: vision_encoder']

        end = time.monotonic() + 20.0
        while time.monotonic() < end and not (ours() and warned(logs)):
            ex.spin_once(timeout_sec=0.05)
        assert ours(), 'no /diagnostics from the encoder within 20 s'
        lines = warned(logs)
        assert len(lines) == 1, [m.msg for m in logs]
        assert 'asked: CUDAExecutionProvider,CPUExecutionProvider' in lines[0].msg
        assert 'available: ' in lines[0].msg
        status = ours()[-1]
        values = {kv.key: kv.value for kv in status.values}
        assert status.level == DiagnosticStatus.WARN
        assert 'asked CUDAExecutionProvider' in status.message
        assert 'live CPUExecutionProvider' in status.message
        assert values['providers'] == 'CPUExecutionProvider'
        assert values['providers_requested'] == 'CUDAExecutionProvider,CPUExecutionProvider'
    finally:
        if node is not None:
            ex.remove_node(node)
            node.destroy_node()
        peer.destroy_node()
        ex.shutdown()
        rclpy.shutdown(context=ctx)
