"""The sleep worker as the memory node runs it: a subprocess on a real store of real inputs.

The store holds JPEG frames of scikit-image photos (crops at the encoder's 240x240, as the vision
encoder keeps them) and s16le-zlib windows of espeak-ng speech (as the audio encoder keeps them).
The worker fine-tunes with real torch, exports real ONNX, and is stopped with a real SIGTERM.
Figures of the run on a 2-core x86: ~0.08 s a vision step, ~0.11 s an audio step, export
~6 s vision / ~3 s audio; the whole module ~40 s.
"""
from __future__ import annotations

# Imports inside tests are lazy: onnxruntime and sage_encoders' model code load only for the
# tests that check a version's files.

import json
import os
import math
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from sage_encoders.model_files import read_meta
from sage_encoders.model_versions import LIVE_FILE, PACKAGED_DIR, ModelVersions
from sage_encoders.preprocess import model_mel


MIN_GAIN, MAX_FORGETTING = 0.05, 0.05
# Passed explicitly and recorded by each version (that the profile's rate reaches the worker is
# test_retrainer's). Whether a version of this small store clears MIN_GAIN depends on the rate and
# on which bursts are held back: the tests below hold for either decision.
LEARNING_RATE = 5e-4


def command(data_dir: Path, versions: Path, modalities: str, max_steps: int,
            min_inputs: int = 8, budget_s: float = 400.0) -> list[str]:
    return [sys.executable, '-m', 'sage_memory.sleep.worker', '--data-dir', str(data_dir),
            '--versions-dir', str(versions), '--modalities', modalities,
            '--time-budget-s', str(budget_s), '--max-steps', str(max_steps),
            '--since', '0', '--min-inputs', str(min_inputs), '--holdout', '0.2',
            '--rehearsal', '0.5', '--min-gain', str(MIN_GAIN),
            '--max-forgetting', str(MAX_FORGETTING), '--seed', '3',
            '--learning-rate', str(LEARNING_RATE)]


@pytest.fixture(scope='module')
def day(tmp_path_factory, fill_training_store):
    """The store, and one finished worker run over both modalities on it."""
    root = tmp_path_factory.mktemp('sleep')
    data_dir, versions = root / 'data', root / 'data' / 'models'
    items = fill_training_store(data_dir)
    t0 = time.monotonic()
    proc = subprocess.run(command(data_dir, versions, 'vision,audio', max_steps=12),
                          capture_output=True, text=True, timeout=500)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout  # ONE JSON line, export chatter goes to stderr
    return {'data_dir': data_dir, 'versions': versions, 'items': items,
            'result': json.loads(lines[0]), 'seconds': seconds}


def test_a_version_is_written_scored_and_decided_by_the_rule(day) -> None:
    out = day['result']
    assert out['preempted'] is False
    assert set(out['modalities']) == {'vision', 'audio'}
    for modality, r in out['modalities'].items():
        assert r['inputs'] == 20 and r['steps'] == 12, r
        assert r['base'] == 'packaged'
        for key in ('day_recon_before', 'day_recon_after', 'heldout_recon_before',
                    'heldout_recon_after'):
            assert math.isfinite(r[key]) and r[key] > 0, (modality, key, r)
        gain = (r['day_recon_before'] - r['day_recon_after']) / r['day_recon_before']
        forgetting = ((r['heldout_recon_after'] - r['heldout_recon_before'])
                      / r['heldout_recon_before'])
        expected = ('promoted' if gain >= MIN_GAIN and forgetting <= MAX_FORGETTING
                    else 'rejected')
        assert r['decision'] == expected, (modality, gain, forgetting, r['reason'])
        print(f"{modality}: {r['decision']} {r['version']} gain {gain:+.1%} forgetting "
              f"{forgetting:+.1%}, {r['timings']['step_s']:.3f} s/step, export "
              f"{r['timings']['export_s']:.1f} s, shipped data "
              f"{r['timings']['shipped_data_s']:.1f} s; run {day['seconds']:.1f} s")
        vdir = day['versions'] / modality / r['version']
        info = json.loads((vdir / 'version.json').read_text())
        assert info['decision'] == r['decision'] and info['base'] == 'packaged'
        assert info['training']['lr'] == LEARNING_RATE
        assert info['training']['freeze_codebook'] is True
        assert info['data']['count'] == 20 and len(info['data']['heldout_uuids']) == 4
        assert info['validation']['day_recon_after'] == pytest.approx(r['day_recon_after'],
                                                                      rel=1e-4)
        live = ModelVersions(day['versions'], modality).live()
        if r['decision'] == 'promoted':
            assert live['version'] == r['version'] and live['path'] == str(vdir)
            assert live['previous'] == 'packaged'
        else:
            assert live['version'] == 'packaged'


@pytest.mark.parametrize('modality', ['vision', 'audio'])
def test_the_version_loads_in_onnxruntime_and_encodes_a_stored_input(day, modality) -> None:
    import onnxruntime as ort

    from sage_encoders.finetune import decode_audio, decode_vision
    from sage_encoders.preprocess import scale_rgb
    from sage_encoders.quantize import nearest_codes

    r = day['result']['modalities'][modality]
    vdir = day['versions'] / modality / r['version']
    item = next(i for i in day['items'] if i.modality == modality)
    x = (scale_rgb(decode_vision(item, 240)) if modality == 'vision'
         else decode_audio(item, model_mel(read_meta(vdir, modality)))[None])
    codebook = np.load(vdir / f'{modality}_codebook.npy')
    # sleep.retrain.freeze_codebook (on by default): the codes mean what they meant.
    assert np.array_equal(codebook, np.load(PACKAGED_DIR / f'{modality}_codebook.npy'))
    for precision in ('fp32', 'int8'):
        enc = ort.InferenceSession(str(vdir / f'{modality}_encoder.{precision}.onnx'),
                                   providers=['CPUExecutionProvider'])
        z = enc.run(None, {'x': x})[0]
        grid = (30, 30) if modality == 'vision' else (16, 16)
        assert z.shape == (1, codebook.shape[1], *grid)
        codes = nearest_codes(z[0], codebook)
        assert codes.shape == grid and codes.max() < len(codebook)
    quality = json.loads((vdir / f'{modality}_quality.json').read_text())
    assert quality['fp16']['code_agreement_vs_fp32'] > 0.9
    meta = json.loads((vdir / f'{modality}_vqvae.json').read_text())
    assert meta['modality'] == modality and meta['finetune'][-1]['base'] == 'packaged'


def _add_undecodable(data_dir: Path) -> dict[str, str]:
    """One stored input per modality whose bytes do not decode; {modality: its uuid}."""
    from sage_memory.store.memory_store import MemoryStore, StoreConfig
    from sage_memory.store.synthetic import synthetic_record
    from sage_memory.store.training_inputs import TrainingInput

    store = MemoryStore(StoreConfig(data_dir=str(data_dir), device_id='t'))
    store.start()
    recs = {m: synthetic_record(5000 + k, np.random.default_rng(5000 + k), dim=8,
                                preview_bytes=16, grid=4, modality=m)
            for k, m in enumerate(('vision', 'audio'))}
    store.submit_many(list(recs.values()))
    assert store.flush()
    for m, rec in recs.items():
        store.submit_training_input(TrainingInput(
            uuid=rec.uuid, modality=m, stamp=rec.stamp, salience=rec.salience,
            format='jpeg' if m == 'vision' else 's16le-zlib', data=b'torn bytes',
            width=240 if m == 'vision' else 0, height=240 if m == 'vision' else 0,
            sample_rate=16000 if m == 'audio' else 0))
    assert store.flush()
    store.close()
    return {m: rec.uuid for m, rec in recs.items()}


@pytest.fixture(scope='module')
def promoted(tmp_path_factory, fill_training_store):
    """A worker run that promotes what it trains (the rule is tested above), on the store of
    `day` plus one stored input per modality that does not decode."""
    root = tmp_path_factory.mktemp('sleep_promoted')
    data_dir, versions = root / 'data', root / 'data' / 'models'
    items = fill_training_store(data_dir)
    bad = _add_undecodable(data_dir)
    proc = subprocess.run(command(data_dir, versions, 'vision,audio', max_steps=2)
                          + ['--min-gain', '-1000', '--max-forgetting', '1000'],
                          capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {'versions': versions, 'items': items, 'bad': bad,
            'result': json.loads(proc.stdout.strip().splitlines()[-1])}


def _encoder_core(modality: str, vdir: Path):
    """The encoder core a node runs on a version folder (fp32 ONNX on the CPU, the profiles'),
    refinement off (the embedding does not depend on it) and, for vision, no exposure gain
    (a stored frame was normalised when it was kept)."""
    from sage_encoders.audio_core import AudioConfig, AudioEncoderCore
    from sage_encoders.puzzle import IrpConfig, RuntimeConfig
    from sage_encoders.vision_core import VisionConfig, VisionEncoderCore

    runtime = RuntimeConfig(modality, model_dir=str(vdir))
    if modality == 'vision':
        return VisionEncoderCore(VisionConfig(runtime, IrpConfig(max_iterations=0),
                                              exposure_target=0.0, training_keep=0))
    return AudioEncoderCore(AudioConfig(runtime, IrpConfig(max_iterations=0), voice=False,
                                        training_keep=0))


def _encode_stored(core, item) -> object:
    """The latent the encoder core publishes for a stored input, through its `encode`."""
    from sage_encoders.input_ring import kept_frame, kept_window
    if item.modality == 'vision':
        return core.encode(kept_frame(item.format, item.data), item.stamp, 0)
    cfg = core.cfg
    return core.encode_window(kept_window(item.format, item.data, item.sample_rate,
                                          cfg.sample_rate, cfg.window_samples), item.stamp)


@pytest.mark.parametrize('modality', ['vision', 'audio'])
def test_a_promoted_version_holds_the_stored_inputs_as_its_encoder_embeds_them(
        promoted, modality) -> None:
    from sage_encoders.model_versions import read_memory_embeddings

    r = promoted['result']['modalities'][modality]
    assert r['decision'] == 'promoted', r
    vdir = promoted['versions'] / modality / r['version']
    found = read_memory_embeddings(vdir)
    assert found is not None
    stored = sorted((i for i in promoted['items'] if i.modality == modality),
                    key=lambda i: (i.stamp, i.uuid))
    # One row per stored input that decodes, in the store's order; the torn one counted.
    assert list(found.uuids) == [i.uuid for i in stored]
    assert promoted['bad'][modality] not in set(found.uuids)
    assert r['memory_embeddings']['count'] == len(stored)
    assert r['memory_embeddings']['undecodable'] == 1
    assert r['timings']['embed_s'] == r['memory_embeddings']['seconds']
    info = json.loads((vdir / 'version.json').read_text())
    assert info['memory_embeddings'] == r['memory_embeddings']
    core = _encoder_core(modality, vdir)
    latents = [_encode_stored(core, item) for item in stored]
    assert all(rec.model_version.startswith(f"{r['version']}:") for rec in latents)
    want = np.stack([rec.embedding for rec in latents])
    assert found.embeddings.dtype == np.float32 and found.embeddings.shape == want.shape
    assert np.allclose(found.embeddings, want, atol=1e-5), \
        float(np.abs(found.embeddings - want).max())
    # Made by the new model, not the one it was fine-tuned from.
    base = _encoder_core(modality, PACKAGED_DIR)
    old = np.stack([_encode_stored(base, item).embedding for item in stored])
    assert not np.allclose(found.embeddings, old, atol=1e-5)


def _tree(versions: Path) -> dict[str, list[str]]:
    return {m.name: sorted(p.name for p in m.iterdir() if p.name != '.lock')
            for m in versions.iterdir()}


def _live_files(versions: Path, modalities) -> dict[str, bytes | None]:
    """live.json of each modality as bytes (None: nothing was ever promoted)."""
    return {m: (versions / m / LIVE_FILE).read_bytes() if (versions / m / LIVE_FILE).exists()
            else None for m in modalities}


def test_sigterm_during_fine_tune_stops_at_once_and_changes_nothing(day) -> None:
    versions = day['versions']
    before = _tree(versions)
    live_before = _live_files(versions, before)
    # Niced and with two torch threads, as the profiles run it.
    proc = subprocess.Popen(command(day['data_dir'], versions, 'vision', max_steps=100_000,
                                    budget_s=600.0) + ['--nice', '7', '--threads', '2'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    training = threading.Event()
    err: list[str] = []

    def read_stderr() -> None:
        for line in proc.stderr:
            err.append(line)
            if 'training on' in line:
                training.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        assert training.wait(60), ''.join(err)[-3000:]
        time.sleep(0.5)  # a few steps in
        assert proc.poll() is None
        # Every thread yields to the graph, torch's pool included (Linux nices per thread).
        nices = _thread_nices(proc.pid)
        assert len(nices) > 1 and set(nices) == {os.getpriority(os.PRIO_PROCESS, 0) + 7}, nices
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout = proc.stdout.read()
        proc.wait(10)
        stop_s = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f'SIGTERM to exit: {stop_s:.3f} s')
    assert proc.returncode == 3, ''.join(err)[-3000:]
    assert stop_s < 5.0
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out['preempted'] is True and out['modalities']['vision']['decision'] == 'preempted'
    assert _tree(versions) == before  # no new version, no temp folder left
    assert _live_files(versions, before) == live_before  # byte for byte, or still none


def _thread_nices(pid: int) -> list[int]:
    """The niceness of each thread of a process (field 19 of /proc/PID/task/TID/stat)."""
    out = []
    for task in Path(f'/proc/{pid}/task').iterdir():
        stat = (task / 'stat').read_text()
        out.append(int(stat.rsplit(')', 1)[1].split()[16]))
    return out


def test_too_few_inputs_skips_without_writing(day, tmp_path) -> None:
    versions = tmp_path / 'models'
    proc = subprocess.run(command(day['data_dir'], versions, 'vision,audio', max_steps=5,
                                  min_inputs=21),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for r in out['modalities'].values():
        assert r['decision'] == 'skipped' and r['inputs'] == 20 and r['version'] == ''
        assert 'fewer than min_inputs 21' in r['reason']
    assert not versions.exists() or not any(versions.rglob('v0*'))


def test_a_worker_whose_node_is_already_gone_stops_before_it_reads(day, tmp_path) -> None:
    # The node that started it (SAGE_SLEEP_PARENT) is not its parent any more: it died before
    # the worker could ask for SIGTERM on its death. The worker must not go on alone.
    from sage_memory.sleep.worker import PARENT_ENV, PREEMPTED_EXIT
    versions = tmp_path / 'models'
    proc = subprocess.run(command(day['data_dir'], versions, 'vision,audio', max_steps=5),
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, PARENT_ENV: '999999999'})
    assert proc.returncode == PREEMPTED_EXIT, proc.stderr
    out = json.loads(proc.stdout)
    assert out['preempted'] and out['modalities'] == {}
    assert not versions.exists()
