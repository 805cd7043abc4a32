"""Audio puzzle encoder: trained weights, parity, windowing, stamps, features, bad input."""
from __future__ import annotations

import json
from pathlib import Path
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from sage_common.previews import decode_audio
from sage_encoders import data
from sage_encoders.audio_core import FEATURES, AudioEncoderCore
from sage_encoders.errors import InputError, ModelError
from sage_encoders.model_files import PACKAGED_DIR, onnx_path, read_meta
from sage_encoders.preprocess import (MelConfig, MODEL_MEL, model_mel, pcm_from_bytes,
                                      pcm_to_float, preprocess_audio)
from sage_encoders.quantize import nearest_codes
from sage_encoders.train import evaluate
from sage_encoders.vqvae import AUDIO_CONFIG, load, VqVae

SR = 16000


def _core(values, **over):
    return AudioEncoderCore.from_params({**values, **over})


def _tone(seconds: float, amp: float = 0.3, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.round(amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _feed(core, pcm, t0=10.0, block=512, atp=None):
    out = []
    for i in range(0, len(pcm), block):
        out += core.push(pcm[i:i + block], t0 + i / SR, SR, atp)
    return out


def test_trained_audio_model_beats_untrained_on_heldout_sounds() -> None:
    torch = pytest.importorskip('torch')

    mel = model_mel(read_meta(PACKAGED_DIR, 'audio'))
    held = data.audio_mels(data.audio_heldout_windows(mel), mel)  # other voices and phrases
    trained = evaluate(load(PACKAGED_DIR / 'audio_vqvae.pt'), held)
    torch.manual_seed(0)
    untrained = evaluate(VqVae(AUDIO_CONFIG), held)
    assert trained['recon_mse'] * 3 < untrained['recon_mse']
    assert trained['codebook_usage'] > 0.5


def test_onnx_codes_match_torch_on_fixed_windows() -> None:
    torch = pytest.importorskip('torch')

    model = load(PACKAGED_DIR / 'audio_vqvae.pt')
    cb = np.load(PACKAGED_DIR / 'audio_codebook.npy')
    sess = ort.InferenceSession(str(onnx_path(PACKAGED_DIR, 'audio', 'encoder', 'fp32')),
                                providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(77)
    for _ in range(6):
        pcm = data.to_pcm(data.synth_clip(rng, 1.1)[:16384])
        x = preprocess_audio(pcm_to_float(pcm), MODEL_MEL)
        z_onnx = sess.run(None, {'x': x})[0][0]
        with torch.no_grad():
            z_torch = model.encoder(torch.from_numpy(x)).numpy()[0]
        assert np.abs(z_onnx - z_torch).max() < 1e-4
        assert np.array_equal(nearest_codes(z_onnx, cb), nearest_codes(z_torch, cb))


def test_audio_quality_report_keeps_int8_code_agreement() -> None:
    rep = json.loads((PACKAGED_DIR / 'audio_quality.json').read_text())
    assert rep['fp16']['code_agreement_vs_fp32'] >= 0.99
    assert rep['int8']['code_agreement_vs_fp32'] >= 0.90
    assert rep['torch_vs_onnx_fp32']['inputs_with_identical_codes'] == rep['inputs']
    rec = json.loads((PACKAGED_DIR / 'audio_vqvae.json').read_text())
    assert rec['evaluation']['recon_ratio_untrained_over_trained'] >= 3


def test_windows_every_hop_stamped_with_their_first_sample(audio_params) -> None:
    core = _core(audio_params)
    recs = _feed(core, _tone(16384 / SR + 2 * 4096 / SR), t0=10.24)  # on the hop grid
    assert len(recs) == 3
    assert [r.stamp for r in recs] == pytest.approx([10.24, 10.496, 10.752])
    assert [r.input_seq for r in recs] == [0, 1, 2]
    assert recs[0].codes.shape == (16, 16) and recs[0].codebook_size == 64
    assert recs[0].embedding.shape == (32,)


def test_a_stamp_gap_restarts_the_window(audio_params) -> None:
    core = _core(audio_params)
    pcm = _tone(0.8)
    assert _feed(core, pcm, t0=0.0) == []
    recs = _feed(core, _tone(1.1), t0=5.12)  # 4 s later than the buffered samples
    assert core.gaps == 1
    assert recs and recs[0].stamp == pytest.approx(5.12)


def test_windows_sit_on_the_hop_grid_wherever_the_stream_starts(audio_params) -> None:
    # A node that joins mid-stream and a replay of a recording cut elsewhere must cut the
    # same windows from the same samples.
    pcm = _tone(3.0)
    early = _feed(_core(audio_params), pcm, t0=100.0)
    late_start = 512 * 5  # five AudioFrames later
    late = _feed(_core(audio_params), pcm[late_start:], t0=100.0 + late_start / SR)
    assert [r.stamp for r in early][-len(late):] == pytest.approx([r.stamp for r in late])
    assert all(round(r.stamp / 0.256, 6).is_integer() for r in late)
    for a, b in zip(early[-len(late):], late):
        assert np.array_equal(a.codes, b.codes)


def test_features_follow_loudness_and_onsets(audio_params) -> None:
    core = _core(audio_params, **{'irp.max_iterations': 0})
    quiet = core.encode_window(np.zeros(16384, np.int16), 0.0)
    tone = core.encode_window(_tone(1.024, amp=0.5), 0.0)
    clap = np.zeros(16384, np.int16)
    rng = np.random.default_rng(3)
    burst = rng.normal(0, 0.5, 1600) * np.exp(-np.arange(1600) / 300)
    clap[8000:9600] = np.round(np.clip(burst, -1, 1) * 32767).astype(np.int16)
    clapped = core.encode_window(clap, 0.0)
    assert tuple(tone.features) == FEATURES
    assert quiet.features['rms'] == 0 and quiet.features['rms_db'] == -100
    assert tone.features['rms'] == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert tone.features['rms_db'] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert clapped.features['onset'] > 0.5
    assert tone.features['onset'] < 0.05 and quiet.features['onset'] == 0


def test_hop_features_measure_the_newest_hop_undiluted(audio_params) -> None:
    # A 30 ms clap is 3 % of a window: its window RMS hardly moves, its hop's frames do.
    core = _core(audio_params, **{'irp.max_iterations': 0})
    rng = np.random.default_rng(5)
    room = np.round(rng.normal(0, 10 ** (-55 / 20), 16384) * 32767).astype(np.int16)
    burst = rng.normal(0, 0.5, 480) * np.exp(-np.arange(480) / 120)
    clap_old, clap_new = room.copy(), room.copy()
    clap_old[4000:4480] += np.round(np.clip(burst, -1, 1) * 32767).astype(np.int16)
    clap_new[14000:14480] += np.round(np.clip(burst, -1, 1) * 32767).astype(np.int16)
    quiet, old, new = (core.encode_window(x, 0.0).features for x in (room, clap_old, clap_new))
    assert quiet['hop_db'] == pytest.approx(-55, abs=1.5)
    assert old['hop_peak_db'] < -50        # the clap left the newest hop: not news any more
    assert new['hop_peak_db'] - quiet['hop_peak_db'] > 30
    assert new['hop_onset_db'] > 30 and quiet['hop_onset_db'] < 6
    assert new['rms_db'] - quiet['rms_db'] > 15   # (the window RMS sees it too, diluted)
    assert new['hop_peak_db'] > new['rms_db'] + 10
    # The spectral bands: broadband burst above the room in every band.
    bands = np.array([new[f'band_{i:02d}'] - quiet[f'band_{i:02d}'] for i in range(16)])
    assert bands.min() > 10


def test_preview_is_the_last_half_second_at_8khz_as_a_compact_wav(audio_params) -> None:
    rec = _core(audio_params).encode_window(_tone(1.024), 0.0)
    assert rec.preview_format == 'wav'
    assert len(rec.preview) < 4000 * 2 * 0.3  # 4-bit ADPCM: about a quarter of 16-bit PCM
    clip, rate = decode_audio(rec.preview, rec.preview_format)
    assert rate == 8000 and 4000 <= len(clip) <= 4100  # ADPCM pads its last block
    assert np.abs(clip).max() > 5000 / 32768


def test_wrong_rate_dtype_and_encoding_are_input_errors(audio_params) -> None:
    core = _core(audio_params)
    with pytest.raises(InputError, match='44100'):
        core.push(_tone(0.1), 0.0, 44100)
    with pytest.raises(InputError):
        core.push(np.zeros(512, np.float32), 0.0, SR)
    with pytest.raises(InputError, match='S16LE'):
        pcm_from_bytes(bytes(1024), 'F32LE', 1)
    with pytest.raises(InputError, match='multiple'):
        pcm_from_bytes(bytes(1023), 'S16LE', 1)
    assert core.push(np.zeros(0, np.int16), 0.0, SR) == []


def test_stereo_frames_are_downmixed() -> None:
    stereo = np.array([[1000, 3000], [-2000, 0]], '<i2')
    assert pcm_from_bytes(stereo.tobytes(), 'S16LE', 2).tolist() == [2000, -1000]


def test_audio_is_deterministic_and_refinement_obeys_atp(audio_params) -> None:
    pcm = _tone(1.024, amp=0.2, freq=700) + _tone(1.024, amp=0.1, freq=2300)
    a = _core(audio_params, **{'irp.max_iterations': 200}).encode_window(pcm, 0.0, atp=1.0)
    b = _core(audio_params, **{'irp.max_iterations': 200}).encode_window(pcm, 0.0, atp=1.0)
    big = _core(audio_params, **{'irp.max_iterations': 200}).encode_window(pcm, 0.0, atp=1e4)
    assert np.array_equal(a.codes, b.codes) and a.energy_final == b.energy_final
    assert a.halt_reason == 'budget' and a.iterations == 1
    assert big.halt_reason == 'converged' and big.iterations > a.iterations
    assert big.energy_final <= a.energy_final


def test_atp_is_shared_by_windows_completed_in_one_block(audio_params) -> None:
    core = _core(audio_params, **{'irp.max_iterations': 200})
    recs = core.push(_tone(16384 / SR + 4096 / SR), 0.0, SR, atp=3.0)
    assert len(recs) == 2
    assert sum(r.atp_spent for r in recs) <= 3.0


def test_a_missing_voice_model_turns_the_feature_off_and_says_why(audio_params, tmp_path):
    said: list[str] = []
    core = AudioEncoderCore.from_params(
        {**audio_params, 'voice.model': str(tmp_path / 'nowhere.onnx')}, log=said.append)
    recs = _feed(core, _tone(2.0))
    assert len(recs) >= 2 and all('voice' not in r.features for r in recs)
    assert 'nowhere.onnx' in (core.voice_error or '') and len(said) == 1
    off = _feed(_core(audio_params, **{'voice.enabled': False}), _tone(2.0))
    assert off and 'voice' not in off[0].features


def _version_with_mel(tmp_path, name: str, mel: dict) -> Path:
    """A copy of the packaged audio model whose metadata records `mel` as its front end."""
    folder = tmp_path / name
    shutil.copytree(PACKAGED_DIR, folder)
    meta = read_meta(folder, 'audio')
    meta['preprocess']['mel'] = mel
    (folder / 'audio_vqvae.json').write_text(json.dumps(meta))
    return folder


def test_each_model_takes_windows_through_the_front_end_it_was_trained_with(
        audio_params, tmp_path) -> None:
    """The packaged model records MODEL_MEL (2048-sample frames) and gets it; a version whose
    metadata records the 512-sample front end (one fine-tuned before MODEL_MEL, rolled back
    to) gets that one; the level and spectrum features keep the default front end."""
    assert read_meta(PACKAGED_DIR, 'audio')['preprocess']['mel'] == MODEL_MEL.__dict__
    assert MODEL_MEL.n_fft != MelConfig().n_fft
    pcm = data.to_pcm(data.synth_clip(np.random.default_rng(5), 1.1)[:16384])
    core = _core(audio_params, **{'irp.max_iterations': 0})

    def check(mel: MelConfig, other: MelConfig):
        rec = core.encode_window(pcm, 1.0)
        model = core.model

        def codes_of(front_end: MelConfig) -> np.ndarray:
            x = preprocess_audio(pcm_to_float(pcm), front_end)
            return nearest_codes(model.encode(x), model.codebook)
        assert np.array_equal(rec.codes, codes_of(mel))
        assert not np.array_equal(rec.codes, codes_of(other))
        return rec

    check(MODEL_MEL, MelConfig())
    core.use_model(_version_with_mel(tmp_path, 'old', MelConfig().__dict__))
    rec = check(MelConfig(), MODEL_MEL)
    fresh = _core(audio_params).encode_window(pcm, 1.0).features
    level = [k for k in FEATURES if k != 'voice']  # the voice detector keeps state
    assert [rec.features[k] for k in level] == [fresh[k] for k in level]


def test_a_version_whose_front_end_record_is_broken_is_refused_clearly(audio_params,
                                                                       tmp_path) -> None:
    bad = _version_with_mel(tmp_path, 'bad', {**MODEL_MEL.__dict__, 'n_ftt': 1024})
    core = _core(audio_params)
    running = core.model
    with pytest.raises(ModelError, match='preprocess.mel'):
        core.use_model(bad)
    assert core.model is running
