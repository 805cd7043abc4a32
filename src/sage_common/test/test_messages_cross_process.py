"""sage_interfaces messages built into the venv travel between two processes over DDS."""
import subprocess
import sys
import textwrap
import time

import rclpy

from sage_common.ros import RELIABLE_QOS
from sage_interfaces.msg import AtpBudget, AudioFrame, Salience

PUBLISHER = textwrap.dedent('''
    import time, rclpy
    from sage_interfaces.msg import AtpAllocation, AtpBudget, AudioFrame, Salience
    from sage_common.ros import RELIABLE_QOS
    rclpy.init()
    node = rclpy.create_node('pub')
    pubs = {t: node.create_publisher(t, '/sage/test/' + t.__name__.lower(), RELIABLE_QOS)
            for t in (Salience, AudioFrame, AtpBudget)}
    end = time.time() + 12
    while time.time() < end:
        s = Salience(modality='audio', surprise=0.25, salience=0.5, attend=True, input_seq=7)
        a = AudioFrame(sample_rate=16000, channels=1, encoding='S16LE', data=bytes(range(256)) * 4)
        b = AtpBudget(tick=3, budget_total=100.0,
                      allocations=[AtpAllocation(plugin='vision_encoder', atp=60.0)])
        pubs[Salience].publish(s); pubs[AudioFrame].publish(a); pubs[AtpBudget].publish(b)
        rclpy.spin_once(node, timeout_sec=0.1)
    rclpy.shutdown()
''')


def test_salience_audio_frame_and_budget_cross_processes(ros_domain):
    pub = subprocess.Popen([sys.executable, '-c', PUBLISHER])
    got = {}
    rclpy.init()
    try:
        node = rclpy.create_node('sub')
        for t in (Salience, AudioFrame, AtpBudget):
            node.create_subscription(t, '/sage/test/' + t.__name__.lower(),
                                     lambda m, t=t: got.setdefault(t, m), RELIABLE_QOS)
        deadline = time.time() + 12
        while len(got) < 3 and time.time() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        rclpy.try_shutdown()
        pub.kill()
        pub.wait()
    assert set(got) == {Salience, AudioFrame, AtpBudget}
    s = got[Salience]
    assert (s.modality, s.input_seq, s.attend) == ('audio', 7, True)
    assert abs(s.surprise - 0.25) < 1e-6
    a = got[AudioFrame]
    assert (a.sample_rate, a.encoding, len(a.data)) == (16000, 'S16LE', 1024)
    assert bytes(a.data[:4]) == bytes([0, 1, 2, 3])
    b = got[AtpBudget]
    assert b.allocations[0].plugin == 'vision_encoder' and b.allocations[0].atp == 60.0
