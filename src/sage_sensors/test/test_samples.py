"""Embedded sample data: real photos and speech, deterministic, idempotent, labelled."""
import json
import os
from pathlib import Path
import sys

import cv2
import numpy as np
import soundfile as sf

from sage_sensors import make_samples
from sage_sensors.samples import (FILES, ensure_samples, load_manifest, sample_data_dir,
                                  write_samples)
from sage_sensors.timeline import PHRASE, Timeline


def test_sample_data_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('SAGE_DATA_DIR', str(tmp_path))
    assert sample_data_dir() == tmp_path
    monkeypatch.delenv('SAGE_DATA_DIR')
    assert sample_data_dir() == Path(sys.prefix) / 'share' / 'sage' / 'samples'


def test_every_file_is_there_and_the_manifest_labels_the_events(samples_dir):
    manifest = load_manifest(samples_dir)
    assert all((samples_dir / name).is_file() for name in FILES)
    assert manifest['phrase'] == PHRASE and manifest['seed'] == 7
    assert [(e['name'], e['stamp']) for e in manifest['events']] == [
        (o.event.name, o.stamp) for o in Timeline().occurrences(0.0, 20.0)]


def test_the_phrase_is_real_speech_and_the_scene_sound_follows_the_timeline(samples_dir):
    phrase, rate = sf.read(str(samples_dir / 'phrase.wav'))
    assert rate == 16000 and 1.0 < len(phrase) / rate < 5.0
    # speech: energy mostly between 100 Hz and 4 kHz
    spec = np.abs(np.fft.rfft(phrase)) ** 2
    f = np.fft.rfftfreq(len(phrase), 1 / rate)
    assert spec[(f > 100) & (f < 4000)].sum() / spec.sum() > 0.8
    scene, _ = sf.read(str(samples_dir / 'scene.wav'))
    assert np.max(np.abs(scene[9 * rate: int(9.2 * rate)])) > 0.8
    assert np.max(np.abs(scene[: 8 * rate])) < 0.05


def test_the_imu_trace_has_the_shake_at_the_scripted_time(samples_dir):
    data = np.genfromtxt(samples_dir / 'imu_trace.csv', delimiter=',', names=True)
    assert len(data) == 4000 and data['t'][1] == 0.005
    during = (data['t'] > 15.3) & (data['t'] < 16.2)
    before = data['t'] < 14.9
    assert np.std(data['ax'][during]) > 1.0 > np.std(data['ax'][before])


def test_the_scene_video_plays_one_period(samples_dir):
    cap = cv2.VideoCapture(str(samples_dir / 'scene.avi'))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 200
    ok, frame = cap.read()
    assert ok and frame.shape == (480, 640, 3)
    cap.release()


def test_generation_is_idempotent_and_deterministic(samples_dir, tmp_path):
    stamps = {n: os.stat(samples_dir / n).st_mtime_ns for n in FILES}
    assert ensure_samples(samples_dir, seed=7) == samples_dir
    assert {n: os.stat(samples_dir / n).st_mtime_ns for n in FILES} == stamps
    again = write_samples(tmp_path / 'again', seed=7)
    first = json.loads((samples_dir / 'manifest.json').read_text())
    for name in ('phrase.wav', 'clap.wav', 'scene.wav', 'imu_trace.csv', 'panorama.png'):
        assert again['files'][name] == first['files'][name], name


def test_the_command_line_reports_the_events(samples_dir, capsys):
    assert make_samples.main(['--out', str(samples_dir), '--seed', '7']) == 0
    out = capsys.readouterr().out
    assert 'clap@9s' in out and 'shake@15s' in out
