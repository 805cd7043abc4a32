"""Offline replay contract: a scenario bag replayed twice gives byte-identical decisions."""
import json

import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin

from sage_eval.bagio import typestore
from sage_eval.errors import ScenarioError
from sage_eval.replay import replay_bag
from sage_eval.scenario import labels_path, load_labels, make_scenario, score_decisions
from sage_snarc.synthetic import SyntheticWorld

pytest.importorskip('sage_encoders.vision_core')

# Refinement off keeps the test short; it does not change the contract.
ENCODERS = {'vision_encoder': {'irp.max_iterations': 0},
            'audio_encoder': {'irp.max_iterations': 0}}
KEYS = ['stamp', 'modality', 'surprise', 'novelty', 'arousal', 'reward', 'conflict',
        'salience', 'attend', 'stored']


@pytest.fixture(scope='module')
def short_bag(tmp_path_factory):
    bag = tmp_path_factory.mktemp('replay') / 'short'
    make_scenario(bag, seed=7, duration_s=36.0, repeats=2, camera_hz=5.0)
    return bag


def test_replay_twice_gives_identical_decision_files(short_bag, tmp_path):
    a, b = tmp_path / 'a.jsonl', tmp_path / 'b.jsonl'
    sa = replay_bag(short_bag, ENCODERS, a)
    sb = replay_bag(short_bag, ENCODERS, b)
    assert a.read_bytes() == b.read_bytes()
    assert sa.inputs == sb.inputs and sa.attended == sb.attended
    assert set(sa.inputs) == {'vision', 'audio', 'imu'}
    assert sa.problems == {}


def test_decision_lines_follow_the_contract(short_bag, tmp_path):
    out = tmp_path / 'd.jsonl'
    summary = replay_bag(short_bag, ENCODERS, out)
    lines = out.read_text().splitlines()
    assert len(lines) == sum(summary.inputs.values())
    stamps = []
    for line in lines:
        d = json.loads(line)
        assert list(d) == KEYS
        assert d['modality'] in ('vision', 'audio', 'imu')
        assert all(0.0 <= d[k] <= 1.0 for k in KEYS[2:8])
        assert isinstance(d['attend'], bool) and isinstance(d['stored'], bool)
        assert d['stored'] <= d['attend']
        stamps.append(d['stamp'])
    labels = load_labels(short_bag)
    assert labels_path(short_bag).is_file()
    assert labels.start <= min(stamps) and max(stamps) <= labels.start + labels.duration_s
    report = score_decisions(out, labels)
    assert report['targets'] == len([e for e in labels.events if e.target])
    assert 0.0 <= report['recall'] <= 1.0


def test_bad_scenario_arguments_are_refused(tmp_path):
    with pytest.raises(ScenarioError):
        make_scenario(tmp_path / 'x', seed=1, program='nonsense')
    with pytest.raises(ScenarioError):
        make_scenario(tmp_path / 'y', seed=1, duration_s=5.0, warmup_s=8.0)
    # Too short for the repeat block that ends every standard scene: its labels would lie
    # past the end of the bag (scoring then refuses the decisions).
    with pytest.raises(ScenarioError, match='needs at least 60 s'):
        make_scenario(tmp_path / 'z', seed=1, duration_s=50.0)
    assert not (tmp_path / 'z').exists()


def test_bag_with_recorded_latents_only_is_scored_from_the_latents(tmp_path):
    ts = typestore()
    Latent = ts.types['sage_interfaces/msg/Latent']
    Header = ts.types['std_msgs/msg/Header']
    Time = ts.types['builtin_interfaces/msg/Time']
    world = SyntheticWorld(3)
    bag = tmp_path / 'latents'
    with Writer(bag, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection('/sage/vision/latent', Latent.__msgtype__, typestore=ts)
        for i in range(50):
            rec = world.vision(1_700_000_000.0 + i / 10.0)
            ns = int(round(rec.stamp * 1e9))
            msg = Latent(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9),
                                       frame_id=''),
                         modality='vision', input_seq=i, grid_height=30, grid_width=30,
                         codes=rec.codes.ravel().astype(np.uint16),
                         codes_initial=np.zeros(0, np.uint16), codebook_size=128,
                         embedding=rec.embedding.astype(np.float32),
                         feature_names=list(rec.features),
                         features=np.array(list(rec.features.values()), np.float32),
                         recon_error=rec.recon_error, iterations=0, energy_initial=0.0,
                         energy_final=0.0, converged=False, halt_reason='none', atp_spent=0.0,
                         encode_ms=0.0, preview_format='', preview=np.zeros(0, np.uint8),
                         text='', model_version='')
            writer.write(conn, ns, ts.serialize_cdr(msg, Latent.__msgtype__))
    out = tmp_path / 'd.jsonl'
    summary = replay_bag(bag, {}, out)
    assert summary.inputs == {'vision': 50}
    assert len(out.read_text().splitlines()) == 50
