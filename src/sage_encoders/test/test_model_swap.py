"""Hot swap of a promoted model version in the puzzle cores (no rclpy): load, check, swap."""
from __future__ import annotations

import json
from pathlib import Path
import shutil
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from sage_common.ros import LATCHED_QOS, SENSOR_QOS
from sage_encoders.audio_core import AudioEncoderCore
from sage_encoders.data import demo_frame
from sage_encoders.errors import ModelError
from sage_encoders.live_models import PACKAGED, LiveModel, live_model
from sage_encoders.model_files import PACKAGED_DIR, model_identity
from sage_encoders.vision_core import VisionEncoderCore
from sage_encoders.vision_encoder_node import VisionEncoderNode
from sage_interfaces.msg import Latent


def copy_model(modality: str, dest: Path) -> Path:
    """A complete model folder of one modality (the packaged files, no torch weights)."""
    dest.mkdir(parents=True)
    for src in PACKAGED_DIR.glob(f'{modality}_*'):
        if src.suffix != '.pt':
            shutil.copy2(src, dest / src.name)
    return dest


def permute_codebook(directory: Path, modality: str, seed: int = 0) -> np.ndarray:
    """Shuffle the codebook's rows in place; returns old code -> new code.

    The same vectors under other numbers: reconstructions and embeddings stay, every code
    number changes to its new index (a measurable, exactly predictable difference).
    """
    path = directory / f'{modality}_codebook.npy'
    cb = np.load(path)
    perm = np.random.default_rng(seed).permutation(len(cb))  # new row j = old row perm[j]
    np.save(path, cb[perm])
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    return inverse


def edit_meta(directory: Path, modality: str, edit) -> None:
    path = directory / f'{modality}_vqvae.json'
    meta = json.loads(path.read_text())
    edit(meta['config'])
    path.write_text(json.dumps(meta))


def _vision(values) -> VisionEncoderCore:
    return VisionEncoderCore.from_params(dict(values, **{'irp.max_iterations': 2}))


FRAMES = [demo_frame(i) for i in range(3)]


def _codes(core: VisionEncoderCore, seq0: int = 0) -> list[np.ndarray]:
    return [core.encode(f, float(seq0 + i), seq0 + i).codes for i, f in enumerate(FRAMES)]


def test_a_copied_version_swaps_in_and_encodes_the_same_grid(vision_params, tmp_path) -> None:
    core = _vision(vision_params)
    before = _codes(core)
    kept = len(core.inputs)
    first = core.model
    v1 = copy_model('vision', tmp_path / 'v0001')
    new = core.use_model(v1)
    assert core.model is new and new.directory == v1
    assert not first.loaded  # the replaced version was freed
    assert new.loaded and new.loads == first.loads + 1
    after = _codes(core, 10)
    assert [c.shape for c in after] == [(30, 30)] * 3
    # The same weights: the same codes (the motion features compare with frames before the
    # swap, so the core's other state went on across it).
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert len(core.inputs) == kept + 3


def test_a_changed_version_changes_the_codes_after_the_swap(vision_params, tmp_path) -> None:
    core = _vision(vision_params)
    before = _codes(core)
    v2 = copy_model('vision', tmp_path / 'v0002')
    relabel = permute_codebook(v2, 'vision')
    core.use_model(v2)
    after = _codes(core)
    for old, new in zip(before, after):
        assert not np.array_equal(old, new)
        assert np.array_equal(new, relabel[old])  # each code renumbered, nothing else moved


def test_each_latent_names_its_model_by_version_and_file_digest(vision_params, tmp_path) -> None:
    core = _vision(vision_params)
    packaged = core.encode(FRAMES[0], 0.0, 0).model_version
    assert packaged == model_identity(PACKAGED_DIR, 'vision', 'fp32')
    name, digest = packaged.split(':')
    assert name == 'packaged' and len(digest) == 8
    copy = copy_model('vision', tmp_path / 'v0001')
    (copy / 'version.json').write_text(json.dumps({'version': 'v0001'}))
    core.use_model(copy)
    assert core.encode(FRAMES[0], 1.0, 1).model_version == f'v0001:{digest}'  # the same files
    v2 = copy_model('vision', tmp_path / 'v0002')  # no version.json: the folder names it
    permute_codebook(v2, 'vision')
    core.use_model(v2)
    name2, digest2 = core.encode(FRAMES[0], 2.0, 2).model_version.split(':')
    assert name2 == 'v0002' and digest2 != digest


def test_the_audio_core_swaps_between_windows_and_keeps_its_buffer(audio_params,
                                                                   tmp_path) -> None:
    core = AudioEncoderCore.from_params(dict(audio_params, **{'irp.max_iterations': 0}))
    t = np.arange(16384 + 8192) / 16000.0
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t * (1 + t))).astype(np.int16)
    stamp = 102.4  # on the 256 ms hop grid: windows start at the first sample
    first = core.push(pcm[:16384 + 4096], stamp, 16000)
    assert len(first) == 2
    v2 = copy_model('audio', tmp_path / 'v0002')
    relabel = permute_codebook(v2, 'audio')
    core.use_model(v2)
    # The next window needs the buffered samples: had the swap dropped them, no window.
    nxt = core.push(pcm[16384 + 4096:], stamp + (16384 + 4096) / 16000.0, 16000)
    assert len(nxt) == 1 and nxt[0].input_seq == 2 and nxt[0].codes.shape == (16, 16)
    reference = AudioEncoderCore.from_params(dict(audio_params, **{'irp.max_iterations': 0}))
    ref = reference.push(pcm, stamp, 16000)[2]
    assert np.array_equal(nxt[0].codes, relabel[ref.codes])


@pytest.mark.parametrize('damage,match', [
    (lambda d: edit_meta(d, 'vision', lambda c: c['channels'].append(c['channels'][-1])),
     r'code grid 15x15 differs from the running model\'s 30x30'),
    (lambda d: (edit_meta(d, 'vision', lambda c: c.update(codebook_size=64)),
                np.save(d / 'vision_codebook.npy', np.load(d / 'vision_codebook.npy')[:64])),
     'codebook size 64 differs'),
    (lambda d: (d / 'vision_encoder.fp32.onnx').unlink(), 'ONNX model not found'),
    (lambda d: (d / 'vision_codebook.npy').unlink(), 'codebook not found'),
    (lambda d: (d / 'vision_decoder.fp32.onnx').write_bytes(b'not a graph'),
     'onnxruntime cannot load'),
    (lambda d: shutil.rmtree(d), 'model directory not found'),
])
def test_a_version_that_does_not_fit_is_refused_and_the_old_one_keeps_working(
        vision_params, tmp_path, damage, match) -> None:
    core = _vision(vision_params)
    before = _codes(core)
    running = core.model
    bad = copy_model('vision', tmp_path / 'v0003')
    damage(bad)
    with pytest.raises(ModelError, match=match):
        core.use_model(bad)
    assert core.model is running and running.loaded
    assert all(np.array_equal(a, b) for a, b in zip(before, _codes(core)))


def test_a_swap_while_unloaded_stays_unloaded_until_the_next_input(vision_params,
                                                                  tmp_path) -> None:
    core = _vision(vision_params)
    core.encode(FRAMES[0], 0.0, 0)
    core.unload()  # DREAM
    new = core.use_model(copy_model('vision', tmp_path / 'v0001'))
    assert core.model is new and not new.loaded  # checked (it loaded), then freed again
    assert core.encode(FRAMES[1], 1.0, 1).codes.shape == (30, 30)
    assert new.loaded


def test_frames_are_encoded_while_a_version_loads_on_another_thread(vision_params,
                                                                   tmp_path) -> None:
    """The load runs beside the encodes; the swap waits for at most the frame in progress."""
    core = _vision(vision_params)
    core.encode(FRAMES[0], 0.0, 0)
    v2 = copy_model('vision', tmp_path / 'v0002')
    permute_codebook(v2, 'vision')
    started, done = threading.Event(), threading.Event()
    prepared = []

    def load() -> None:
        started.set()
        prepared.append(core.prepare_model(v2))
        done.set()

    thread = threading.Thread(target=load)
    thread.start()
    started.wait(5.0)
    during = 0
    while not done.is_set():
        core.encode(FRAMES[during % 3], 1.0 + during, 1 + during)
        during += 1
    thread.join(10.0)
    assert during >= 1  # encodes went on while the candidate loaded
    assert core.model is not prepared[0]  # nothing changed before the swap
    # A swap from another thread while this one encodes: it lands between two frames.
    swapper = threading.Thread(target=core.swap_model, args=(prepared[0],))
    t0 = time.perf_counter()
    with core.model_lock:  # a frame in progress
        swapper.start()
        time.sleep(0.05)
        assert core.model is not prepared[0]
    swapper.join(5.0)
    assert core.model is prepared[0] and time.perf_counter() - t0 < 5.0


def test_frames_begin_while_a_swap_waits_for_a_refinement_in_progress(vision_params,
                                                                      tmp_path) -> None:
    """A swap waits for the refinement in progress (another thread's) without blocking the
    frames that arrive meanwhile: the salience path never waits for a refinement."""
    core = _vision(vision_params)
    pending = core.begin(FRAMES[0], 0.0, 0)
    candidate = core.prepare_model(copy_model('vision', tmp_path / 'v0002'))
    refining, release = threading.Event(), threading.Event()

    def before_step() -> None:
        refining.set()
        release.wait(10.0)

    refiner = threading.Thread(target=core.finish, args=(pending, 1.0, before_step))
    swapper = threading.Thread(target=core.swap_model, args=(candidate,))
    refiner.start()
    try:
        assert refining.wait(5.0)  # the refinement holds refine_lock
        swapper.start()
        time.sleep(0.05)  # the swap is waiting for that refinement
        begun = []
        framer = threading.Thread(target=lambda: begun.append(core.begin(FRAMES[1], 1.0, 1)))
        framer.start()
        framer.join(5.0)
        assert begun, 'a frame waited for the refinement behind a waiting swap'
        assert begun[0].model is not candidate  # the swap has not happened yet
    finally:
        release.set()
        refiner.join(10.0)
        swapper.join(10.0)
    assert core.model is candidate


def test_the_live_models_message_names_a_version_and_its_folder(tmp_path) -> None:
    start = tmp_path / 'start'
    msg = json.dumps({'vision': {'version': 'v0002', 'path': str(tmp_path / 'v0002')},
                      'audio': {'version': 'packaged', 'path': ''}})
    assert live_model(msg, 'vision', start) == LiveModel('v0002', tmp_path / 'v0002')
    assert live_model(msg, 'audio', start) == LiveModel(PACKAGED, start)
    assert live_model(json.dumps({'audio': {'version': 'packaged'}}), 'vision', start) is None
    for bad, match in [('{not json', 'not JSON'), ('[1]', 'not a JSON object'),
                       ('{"vision": 3}', 'not an object'),
                       ('{"vision": {"path": "/x"}}', 'no version'),
                       ('{"vision": {"version": "v1", "path": ""}}', 'without a path'),
                       ('{"vision": {"version": "v1", "path": 7}}', 'not a string')]:
        with pytest.raises(ModelError, match=match):
            live_model(bad, 'vision', start)


# --- the node shell: real messages on a private ROS domain ---------------------------------

PERIOD_S = 0.2  # frame period of the steady stream (5 Hz; an encode takes ~20-60 ms here)


class _Spinner:
    """Spins one node on its own executor and thread."""

    def __init__(self, ctx, node) -> None:
        self.node = node
        self._ex = SingleThreadedExecutor(context=ctx)
        self._ex.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._ex.spin_once(timeout_sec=0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._ex.remove_node(self.node)
        self._ex.shutdown()


class _Watch:
    """Latents (with arrival times) and the encoder's /diagnostics values, with waits."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        # t, frame, seq, codes, model_version
        self.latents: list[tuple[float, int, int, np.ndarray, str]] = []
        self.diag: dict[str, str] = {}
        self.level = 0
        self.message = ''

    def on_latent(self, msg) -> None:
        # The codes before refinement: what a version makes of the frame whatever ATP its
        # refinement got (on a loaded machine a queued frame is finished without steps, and
        # its refined codes are not the others').
        flat = msg.codes_initial if len(msg.codes_initial) else msg.codes
        codes = np.array(flat, np.uint16).reshape(msg.grid_height, msg.grid_width)
        with self.cond:
            self.latents.append((time.monotonic(), int(msg.header.stamp.sec),
                                 int(msg.input_seq), codes, msg.model_version))
            self.cond.notify_all()

    def on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == 'sage: vision_encoder':
                with self.cond:
                    self.diag = {kv.key: kv.value for kv in status.values}
                    self.level, self.message = status.level[0], status.message
                    self.cond.notify_all()

    def wait(self, pred, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)


def test_the_vision_node_swaps_a_promoted_version_between_two_frames(ros_domain,
                                                                     tmp_path) -> None:
    v2 = copy_model('vision', tmp_path / 'v0002')
    relabel = permute_codebook(v2, 'vision')  # a measurably different version
    ctx = Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = VisionEncoderNode(context=ctx, parameter_overrides=[
        Parameter('diagnostics_period', value=0.2)])
    peer = rclpy.create_node('swap_peer', context=ctx)
    watch = _Watch()
    peer.create_subscription(Latent, '/sage/vision/latent', watch.on_latent, 100)
    peer.create_subscription(DiagnosticArray, '/diagnostics', watch.on_diagnostics, 50)
    img_pub = peer.create_publisher(Image, '/sage/camera/image_raw', SENSOR_QOS)
    live_pub = peer.create_publisher(String, '/sage/models/live', LATCHED_QOS)
    spinners = [_Spinner(ctx, node), _Spinner(ctx, peer)]
    streaming = threading.Event()
    streaming.set()

    def stream() -> None:
        """The same frame at a steady rate; its stamp's seconds number it."""
        frame = demo_frame(0)
        k, next_t = 0, time.monotonic()
        while streaming.is_set():
            img = Image(height=frame.shape[0], width=frame.shape[1], encoding='rgb8',
                        step=frame.shape[1] * 3, data=frame.tobytes())
            img.header.stamp.sec = 1000 + k
            img_pub.publish(img)
            k += 1
            next_t += PERIOD_S
            time.sleep(max(0.0, next_t - time.monotonic()))

    streamer = threading.Thread(target=stream, daemon=True)
    try:
        assert watch.wait(lambda w: w.diag.get('model_version') == 'packaged')
        assert watch.diag['model_swaps'] == '0'
        deadline = time.monotonic() + 10.0
        while img_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        streamer.start()
        assert watch.wait(lambda w: len(w.latents) >= 6)

        # (a) a promoted version: /diagnostics names it once it is in use.
        live_pub.publish(String(data=json.dumps({
            'vision': {'version': 'v0002', 'path': str(v2)},
            'audio': {'version': 'packaged', 'path': ''}})))
        assert watch.wait(lambda w: w.diag.get('model_version') == 'v0002')
        assert watch.diag['model_path'] == str(v2) and watch.diag['model_swaps'] == '1'
        assert watch.diag['model_error'] == ''
        n_swapped = len(watch.latents)
        assert watch.wait(lambda w: len(w.latents) >= n_swapped + 5)

        # (c) a missing folder, then a malformed message: errors, the stream goes on.
        missing = tmp_path / 'v0003'
        live_pub.publish(String(data=json.dumps({
            'vision': {'version': 'v0003', 'path': str(missing)}})))
        assert watch.wait(lambda w: 'v0003' in w.diag.get('model_error', ''))
        assert 'model directory not found' in watch.diag['model_error']
        assert watch.wait(lambda w: w.level == 2 and 'v0003' in w.message)
        live_pub.publish(String(data='{"vision": '))
        assert watch.wait(lambda w: w.diag.get('model_swap_failures') == '2')
        assert 'not JSON' in watch.diag['model_error']
        assert watch.diag['model_version'] == 'v0002'  # the good version stayed
        n_failed = len(watch.latents)
        assert watch.wait(lambda w: len(w.latents) >= n_failed + 3)  # still encoding
    finally:
        streaming.clear()
        if streamer.is_alive():
            streamer.join(timeout=5)
        for spinner in spinners:
            spinner.stop()
        node.close()
        node.destroy_node()
        peer.destroy_node()
        rclpy.shutdown(context=ctx)

    times = np.array([t for t, _, _, _, _ in watch.latents])
    frames = np.array([f for _, f, _, _, _ in watch.latents])
    seqs = np.array([s for _, _, s, _, _ in watch.latents])
    old_codes = watch.latents[0][3]
    new_codes = relabel[old_codes]
    is_new = [bool(np.array_equal(c, new_codes)) for _, _, _, c, _ in watch.latents]
    # Every latent was encoded wholly by one version, the old one until the swap, then the new.
    assert all(is_new[i] or np.array_equal(c, old_codes)
               for i, (_, _, _, c, _) in enumerate(watch.latents))
    swap = is_new.index(True)
    assert swap > 0 and all(is_new[swap:])
    # Each latent names the model that made it (SNARC restarts its predictions on a change).
    named = [v for _, _, _, _, v in watch.latents]
    assert named == [model_identity(PACKAGED_DIR, 'vision', 'fp32')] * swap + \
        [model_identity(v2, 'vision', 'fp32')] * (len(named) - swap)
    assert named[0].startswith('packaged:') and named[-1].startswith('v0002:')
    # (b) no input lost across the swap: consecutive input_seq, and the first frame the new
    # version encoded is the one after the old version's last, with no stall between them (a
    # load on the executor would hold the camera's newest-only queue and skip frames there).
    # Elsewhere a loaded machine may let the newest-only queue replace a frame: not the swap's.
    assert (np.diff(seqs) == 1).all()
    assert frames[swap] - frames[swap - 1] == 1, frames[max(0, swap - 4):swap + 4]
    gaps = np.diff(times)
    normal = float(np.median(gaps))
    at_swap = float(times[swap] - times[swap - 1])
    print(f'\nlatent period: median {normal * 1e3:.0f} ms, across the swap '
          f'{at_swap * 1e3:.0f} ms (frames every {PERIOD_S * 1e3:.0f} ms)')
    assert at_swap < 2 * PERIOD_S


def test_with_follow_live_off_the_node_keeps_its_model_until_it_is_turned_on(ros_domain,
                                                                            tmp_path) -> None:
    v2 = copy_model('vision', tmp_path / 'v0002')
    ctx = Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = VisionEncoderNode(context=ctx, parameter_overrides=[
        Parameter('diagnostics_period', value=0.2), Parameter('models.follow_live', value=False)])
    peer = rclpy.create_node('swap_peer', context=ctx)
    watch = _Watch()
    peer.create_subscription(DiagnosticArray, '/diagnostics', watch.on_diagnostics, 50)
    live_pub = peer.create_publisher(String, '/sage/models/live', LATCHED_QOS)
    live_pub.publish(String(data=json.dumps({'vision': {'version': 'v0002', 'path': str(v2)}})))
    spinners = [_Spinner(ctx, node), _Spinner(ctx, peer)]
    try:
        deadline = time.monotonic() + 20.0  # the latched message reaches the node
        while node._live_msg is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert node._live_msg is not None
        assert node._loader is None and node.core.model.directory == PACKAGED_DIR
        assert watch.wait(lambda w: w.diag.get('model_version') == 'packaged')
        node.set_parameters([Parameter('models.follow_live', value=True)])
        assert watch.wait(lambda w: w.diag.get('model_version') == 'v0002')
        assert node.core.model.directory == v2
    finally:
        for spinner in spinners:
            spinner.stop()
        node.close()
        node.destroy_node()
        peer.destroy_node()
        rclpy.shutdown(context=ctx)
