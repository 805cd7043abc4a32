"""What the sleep benchmarks share (`sage bench sleep`, `--hour`, `--preempt`): the inputs kept
for a sleep, as the encoders hand them to the memory node (`Kept`, `scene_inputs`), the memory
store filled with them (`fill_store`), and the sleep worker run and measured (`run_worker`:
wall time, peak RSS and PSS).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
import json
from pathlib import Path
import subprocess
import time
from typing import Any, NamedTuple

import numpy as np
import psutil
from rosbags.highlevel import AnyReader

from sage_common.errors import SageError
from sage_eval.bagio import AUDIO_TOPIC, CAMERA_TOPIC, typestore

RSS_POLL_S = 0.05


class Kept(NamedTuple):
    """An input kept for sleep: which one, its stored row's salience, the encoder's answer
    (`sage_encoders.input_ring.InputAnswer`)."""

    modality: str
    stamp: float
    input_seq: int
    salience: float
    answer: Any


def scene_inputs(bag: Path, vision: Mapping[str, Any], audio: Mapping[str, Any],
                 n_vision: int, n_audio: int) -> list[Any]:
    """Up to n_vision frames and n_audio windows of one scene bag, evenly spread, as the
    encoders would hand them over (`Kept`, salience 0.5)."""
    # lazy: the encoders load cv2 and onnxruntime; sage_bench.sleep imports this module light
    from sage_encoders.input_ring import jpeg_input, s16le_zlib_input
    from sage_encoders.preprocess import rgb_from_buffer
    from sage_encoders.vision_core import VisionEncoderCore

    core = VisionEncoderCore.from_params(vision)  # frames as it keeps them (no model load)
    quality = int(vision['training_input.jpeg_quality'])
    window, rate = int(audio['window_samples']), int(audio['sample_rate'])
    out: list[Any] = []
    pcm: list[np.ndarray] = []
    t_audio0 = None
    with AnyReader([Path(bag)], default_typestore=typestore()) as reader:
        cams = [c for c in reader.connections if c.topic == CAMERA_TOPIC]
        total = sum(c.msgcount for c in cams)
        step = max(1, total // max(n_vision, 1))
        conns = cams + [c for c in reader.connections if c.topic == AUDIO_TOPIC]
        k = 0
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if conn.topic == CAMERA_TOPIC:
                if k % step == 0 and k // step < n_vision:
                    rgb = rgb_from_buffer(bytes(msg.data), int(msg.width), int(msg.height),
                                          int(msg.step), str(msg.encoding))
                    out.append(Kept('vision', stamp, k, 0.5,
                                    jpeg_input(core.model_frame(rgb), quality)))
                k += 1
            else:
                if int(msg.sample_rate) != rate or int(msg.channels) != 1:
                    raise SageError(f'{bag}: audio {msg.sample_rate} Hz x {msg.channels}, '
                                    f'the encoder takes {rate} Hz mono')
                t_audio0 = stamp if t_audio0 is None else t_audio0
                pcm.append(np.frombuffer(bytes(msg.data), '<i2'))
    samples = np.concatenate(pcm) if pcm else np.zeros(0, np.int16)
    if len(samples) >= window and n_audio > 0:
        ends = np.linspace(window, len(samples), min(n_audio, len(samples) // window * 4))
        for j, end in enumerate(ends.astype(int)):
            out.append(Kept('audio', float(t_audio0) + (end - window) / rate, j, 0.5,
                            s16le_zlib_input(samples[end - window:end], rate)))
    return out


def fill_store(data_dir: Path, kept: list[Kept], budget_mb: float = 256.0
               ) -> dict[str, int]:
    """Experiences and their TrainingInputs, as the memory node stores them (SQLite, with
    the node's disk budget for the inputs: beyond it the least valuable go)."""
    # lazy: the store loads SQLAlchemy
    from sage_memory.store.memory_store import MemoryStore, StoreConfig
    from sage_memory.store.synthetic import synthetic_record
    from sage_memory.store.training_inputs import TrainingInput

    store = MemoryStore(StoreConfig(data_dir=str(data_dir), device_id='bench-sleep',
                                    training_budget_mb=float(budget_mb)))
    store.start()
    try:
        rng = np.random.default_rng(0)
        recs, items = [], []
        for i, k in enumerate(kept):
            rec = synthetic_record(i, rng, dim=8, preview_bytes=16, grid=4,
                                   modality=k.modality, stamp=k.stamp,
                                   input_seq=k.input_seq, salience=k.salience)
            recs.append(rec)
            ans = k.answer
            items.append(TrainingInput(uuid=rec.uuid, modality=k.modality, stamp=k.stamp,
                                       salience=k.salience, format=ans.format, data=ans.data,
                                       width=ans.width, height=ans.height,
                                       sample_rate=ans.sample_rate, samples=ans.samples))
        store.submit_many(recs)
        if not store.flush(120.0):
            raise SageError('the memory store did not take the experiences')
        for item in items:
            store.submit_training_input(item)
        if not store.flush(120.0):
            raise SageError('the memory store did not take the training inputs')
        return dict(Counter(i.modality for i in items))
    finally:
        store.close()


def pss(p: Any) -> int:
    """Proportional set size of a process (its RSS where the kernel does not report PSS)."""
    try:
        return int(p.memory_full_info().pss)
    except (AttributeError, NotImplementedError):
        return int(p.memory_info().rss)


def tree_pss(ps: Any) -> int:
    """PSS of a process and of those of its children that run another program.

    A child still running the worker's own program has not reached exec yet: Python spawns
    tools (espeak-ng) with vfork, whose child runs in the parent's memory, so the kernel
    reports the parent's whole footprint for it (a sleep read 1,161 MB for a 644 MB worker).
    """
    exe = ps.exe()
    total = pss(ps)
    for c in ps.children(recursive=True):
        try:
            if c.exe() != exe:
                total += pss(c)
        except psutil.Error:  # it ended between the listing and the reading
            continue
    return total


def run_worker(cmd: list[str], log_path: Path) -> dict[str, Any]:
    """Run the sleep worker; its JSON line, exit code, wall time and peak memory (psutil):
    peak_rss_mb is the worker's own resident size (what the memory node holds against
    sleep.retrain.max_rss_mb), peak_pss_mb the proportional sizes of the worker and of the
    tools it runs (`tree_pss`). RSS summed over the tree would count the worker twice."""
    t0 = time.monotonic()
    peak = peak_pss = 0
    with log_path.open('w') as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            ps = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    peak = max(peak, ps.memory_info().rss)
                    peak_pss = max(peak_pss, tree_pss(ps))
                except psutil.Error:
                    pass
                time.sleep(RSS_POLL_S)
            out = proc.stdout.read() if proc.stdout else ''
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    seconds = time.monotonic() - t0
    lines = [ln for ln in out.splitlines() if ln.strip()]
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    if not result:
        tail = log_path.read_text()[-2000:]
        raise SageError(f'the sleep worker gave no JSON line (exit {proc.returncode}): {tail}')
    return {'seconds': seconds, 'peak_rss_mb': peak / 2**20, 'peak_pss_mb': peak_pss / 2**20,
            'exit_code': proc.returncode, 'result': result}
