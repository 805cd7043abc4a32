"""Frames through the shared-memory mailbox give the same latents and salience decisions as
frames through Image messages (real vision encoder and SNARC node processes), and a frame that
reaches the mailbox encoder both ways is encoded once."""
from __future__ import annotations

from dataclasses import replace
import os
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image

from sage_bringup.environment import graph_env
from sage_bringup.profile import load_profile
from sage_bringup.supervisor import Supervisor, SupervisorConfig
from sage_common.mailbox_params import FRAME_REF_TOPIC
from sage_common.params import resolve
from sage_common.ros import RELIABLE_QOS, SENSOR_QOS
from sage_common.stamps import to_sec
from sage_interfaces.msg import FrameRef, Latent, Salience
from sage_sensors.camera_backends import build_scene
from sage_sensors.camera_params import PARAMS

pytest.importorskip('sage_cuda_mailbox', reason='mailbox module not built')
pytestmark = pytest.mark.graph

FRAMES = 36          # 18 s of scene time at 2 Hz: the object appears at 6 s
FRAME_TIMEOUT_S = 15.0  # per frame; a frame that never arrives on one path fails the test


def _scene_frames():
    scene = build_scene(resolve(PARAMS, {'width': 320, 'height': 240}))
    return [scene.render(0.5 * i, i) for i in range(FRAMES)]


def _graph(profile, tmp_path, domain):
    """Two vision encoders + two SNARC nodes: path A on Image, path B on the mailbox."""
    segment = f'sage_test_{os.getpid()}'
    nodes = []
    for path, mailbox in (('a', False), ('b', True)):
        enc = profile.node('vision_encoder')
        snarc = profile.node('snarc')
        enc_params = dict(enc.parameters, **{'mailbox.enabled': mailbox})
        snarc_params = dict(snarc.parameters, **{'memory.preload_k': 0, 'state_file': ''})
        remap = (('/sage/vision/latent', f'/{path}/vision/latent'),)
        # path b's Images come on a topic of their own: a third of the frames, sent both ways
        images = (('/sage/camera/image_raw', '/b/image_raw'),) if mailbox else ()
        nodes.append(replace(enc, name=f'enc_{path}', parameters=enc_params,
                             remappings=remap + images))
        nodes.append(replace(snarc, name=f'snarc_{path}', parameters=snarc_params,
                             remappings=remap + (('/sage/salience', f'/{path}/salience'),)))
    env = dict(os.environ, **graph_env(profile, domain))
    return Supervisor(tuple(nodes), tmp_path, env, SupervisorConfig(grace_s=2.0),
                      python=sys.executable, log=lambda s: None), segment


def _matched(node, image_pubs, ref_pub) -> bool:
    """Both encoders, both SNARC nodes and this node's subscriptions see each other."""
    return (all(p.get_subscription_count() >= 1 for p in image_pubs)
            and ref_pub.get_subscription_count() >= 1
            and all(node.count_subscribers(f'/{p}/vision/latent') >= 2
                    and node.count_publishers(f'/{p}/vision/latent') >= 1
                    and node.count_publishers(f'/{p}/salience') >= 1 for p in ('a', 'b')))


def test_mailbox_and_image_paths_give_identical_latents_and_decisions(ros_domain, tmp_path):
    # lazy: keeps the compiled mailbox out of this module's import
    from sage_cuda_mailbox import FrameWriter

    frames = _scene_frames()
    sup, segment = _graph(load_profile('nano'), tmp_path, ros_domain)
    writer = FrameWriter(segment, slots=4, max_bytes=320 * 240 * 3)
    got = {'a': {}, 'b': {}, 'la': {}, 'lb': {}}
    latents_b: list[float] = []  # every refined latent path b published (duplicates too)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = rclpy.create_node('mailbox_path_test', context=ctx)
    for p in ('a', 'b'):
        node.create_subscription(Salience, f'/{p}/salience',
                                 lambda m, p=p: got[p].setdefault(to_sec(m.header.stamp), m),
                                 RELIABLE_QOS)
        node.create_subscription(Latent, f'/{p}/vision/latent',
                                 lambda m, p=p: got['l' + p].setdefault(
                                     to_sec(m.header.stamp), list(m.codes)), RELIABLE_QOS)
    node.create_subscription(Latent, '/b/vision/latent',
                             lambda m: latents_b.append(to_sec(m.header.stamp)), RELIABLE_QOS)
    heard: set[str] = set()

    def on_diagnostics(msg) -> None:
        for st in msg.status:
            name = st.name.split(':')[-1].strip().lstrip('/')
            if any(kv.key == 'inputs' and int(kv.value) > 0 for kv in st.values):
                heard.add(name)

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, RELIABLE_QOS)
    image_pub = node.create_publisher(Image, '/sage/camera/image_raw', SENSOR_QOS)
    image_b_pub = node.create_publisher(Image, '/b/image_raw', SENSOR_QOS)
    ref_pub = node.create_publisher(FrameRef, FRAME_REF_TOPIC, SENSOR_QOS)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    sup.start()
    try:
        # Wait until every hop of both paths is matched before sending anything.
        deadline = time.monotonic() + 60
        image_pubs = (image_pub, image_b_pub)
        while time.monotonic() < deadline and not _matched(node, image_pubs, ref_pub):
            time.sleep(0.2)
        # The test sees an encoder's subscription before that encoder's reader may have
        # matched the test's writers (a frame sent then is never delivered). Probe until both
        # encoders count an input on /diagnostics: the probes cannot be decoded (an unknown
        # encoding, a sequence the mailbox never wrote), so they reach no latent and no SNARC.
        while time.monotonic() < deadline and not ({'enc_a', 'enc_b'} <= heard):
            image_pub.publish(Image(height=1, width=1, encoding='probe', step=3,
                                    data=b'\x00\x00\x00'))
            ref_pub.publish(FrameRef(segment=segment, slot=0, sequence=2**40, width=320,
                                     height=240, step=960, encoding='rgb8'))
            time.sleep(0.5)
        assert {'enc_a', 'enc_b'} <= heard, f'encoders never got a probe: {heard}'
        t0 = 1_700_000_000.0
        for i, frame in enumerate(frames):
            stamp = t0 + 0.5 * i
            img = Image(height=frame.shape[0], width=frame.shape[1], encoding='rgb8',
                        step=frame.shape[1] * 3)
            img.header.stamp.sec, img.header.stamp.nanosec = int(stamp), int(stamp % 1 * 1e9)
            img.data = frame.tobytes()
            desc = writer.write(frame, stamp)
            ref = FrameRef(segment=desc.segment, slot=desc.slot, sequence=desc.sequence,
                           width=desc.width, height=desc.height, step=desc.step,
                           encoding=desc.encoding)
            ref.header.stamp = img.header.stamp
            image_pub.publish(img)
            ref_pub.publish(ref)
            if i % 3 == 0:
                image_b_pub.publish(img)
            # Lock-step: the next frame goes out once both paths scored this one and published
            # its refined latent (salience comes first: SNARC scores the latent published
            # before refinement), so neither path's newest-only queue can drop a frame however
            # loaded the machine is.
            deadline = time.monotonic() + FRAME_TIMEOUT_S
            while time.monotonic() < deadline and not all(stamp in got[k] for k in got):
                time.sleep(0.01)
    finally:
        sup.stop()
        writer.close()
        ex.shutdown()
        rclpy.try_shutdown(context=ctx)

    assert len(got['a']) == FRAMES and len(got['b']) == FRAMES, (
        len(got['a']), len(got['b']), [(tmp_path / 'logs' / f).read_text()[-2000:]
                                       for f in ('enc_b.log', 'snarc_b.log')])
    assert got['la'] == got['lb']           # identical code grids, frame by frame
    # encoded once each, though a third came to path b both ways
    assert len(latents_b) == len(set(latents_b)) == FRAMES, sorted(latents_b)
    for stamp, a in got['a'].items():
        b = got['b'][stamp]
        assert a.attend == b.attend, stamp
        assert abs(a.salience - b.salience) < 1e-6
    assert any(m.attend for m in got['a'].values())   # the object's appearance is noticed
    assert np.ptp([m.salience for m in got['a'].values()]) > 0.05
