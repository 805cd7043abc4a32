"""`sage experiment`: variants from the command line, metrics, and a real offline replay."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from sage.bag_types import sage_typestore
from sage.experiment import (ExperimentError, decision_metrics, parse_variants,
                             run_experiment)
from sage_common.errors import ParamError
from sage_eval.scenario import Event, labels_path, ScenarioLabels
from sage_interfaces.msg import Latent

T0 = 1_700_000_000.0


def _profile(tmp_path: Path, nodes: dict[str, tuple[str, str, str]]) -> Path:
    lines = ['launch:', '  nodes:']
    for name, (package, executable, params) in nodes.items():
        lines.append(f'    {name}: {{package: {package}, executable: {executable}, '
                     f'params: {params}}}')
    path = tmp_path / 'exp_profile.yaml'
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_first_sets_are_compared_with_the_profile_unless_vs_is_given():
    assert parse_variants(['a.b=1']) == [[], ['a.b=1']]
    assert parse_variants(['a.b=1'], ["a.b=2 c.d='x y'", 'a.b=3']) == [
        ['a.b=1'], ['a.b=2', 'c.d=x y'], ['a.b=3']]


def test_decision_metrics_summarise_rates_and_axes(tmp_path):
    path = tmp_path / 'd.jsonl'
    rows = [{'stamp': T0 + k, 'modality': 'vision' if k % 2 else 'audio',
             'surprise': k / 10, 'novelty': 0.5, 'arousal': 0.0, 'reward': 0.0,
             'conflict': 0.0, 'salience': k / 10, 'attend': k >= 8, 'stored': k == 9}
            for k in range(10)]
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    m = decision_metrics(path)
    assert m['inputs'] == 10 and m['attended'] == 2 and m['stored'] == 1
    assert m['attention_rate'] == pytest.approx(0.2)
    assert m['attention_rate.vision'] == pytest.approx(0.2)   # k = 9 of 1, 3, 5, 7, 9
    assert m['surprise.mean'] == pytest.approx(0.45) and m['novelty.p95'] == pytest.approx(0.5)
    assert m['attended_per_min'] == pytest.approx(2 / (9 / 60))


def test_each_variant_reaches_the_replay_with_its_overrides(tmp_path):
    profile = _profile(tmp_path, {'viz': ('sage', 'viz_node', 'sage.viz_params')})
    (tmp_path / 'bag').mkdir()
    (tmp_path / 'bag' / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    seen = []

    def fake_replay(bag, node_params, out_path):
        window = node_params['viz']['window_s']
        seen.append(window)
        out_path.write_text(''.join(json.dumps(
            {'stamp': T0 + k, 'modality': 'vision', 'surprise': 0.0, 'novelty': 0.0,
             'arousal': 0.0, 'reward': 0.0, 'conflict': 0.0, 'salience': 0.5,
             'attend': k < window, 'stored': False}) + '\n' for k in range(10)))

    out = io.StringIO()
    result = run_experiment(tmp_path / 'bag', str(profile),
                            [['viz.window_s=2.0'], ['viz.window_s=5.0']], out,
                            replay=fake_replay)
    assert seen == [2.0, 5.0]
    rates = [v['metrics']['attention_rate'] for v in result['variants']]
    assert rates == [pytest.approx(0.2), pytest.approx(0.5)] and not result['labelled']
    row = next(line for line in out.getvalue().splitlines() if 'attention_rate ' in line)
    assert '20.0%' in row and '50.0%' in row
    assert 'A: viz.window_s=2.0' in out.getvalue() and 'B: viz.window_s=5.0' in out.getvalue()
    with pytest.raises(ParamError, match='window_s'):
        run_experiment(tmp_path / 'bag', str(profile), [[], ['viz.window_s=-1']], out,
                       replay=fake_replay)
    with pytest.raises(ExperimentError, match='two'):
        run_experiment(tmp_path / 'bag', str(profile), [[]], out, replay=fake_replay)


def _write_latent_bag(path: Path) -> None:
    """Write vision latents only (the replay scores them without encoders).

    A calm stream of similar embeddings, then at 20 s a burst of very different ones (and
    flickering brightness, a channel of vision surprise).
    """
    rng = np.random.default_rng(3)
    base = rng.normal(size=32).astype(np.float32)
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conn = writer.add_connection('/sage/vision/latent', 'sage_interfaces/msg/Latent',
                                 typestore=sage_typestore())
    for k in range(300):
        t = T0 + k * 0.1
        odd = 200 <= k < 215
        emb = (rng.normal(size=32) * 5 if odd else base + rng.normal(size=32) * 0.05)
        msg = Latent(modality='vision', input_seq=k, embedding=emb.astype(np.float32).tolist(),
                     feature_names=['brightness', 'brightness_change', 'motion'],
                     features=[0.5 + (rng.uniform(0.1, 0.4) if odd else 0.0),
                               0.3 if odd else 0.0, 0.2 if odd else 0.001])
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round(t % 1 * 1e9))
        writer.write(conn, int(t * 1e9), serialize_message(msg))
    writer.close()


def test_real_replay_of_a_labelled_bag_compares_weight_settings(tmp_path):
    pytest.importorskip('sage_eval.replay')
    bag = tmp_path / 'scenario'
    _write_latent_bag(bag)
    labels = ScenarioLabels(seed=0, program='standard', duration_s=30.0, start=T0,
                            warmup_s=5.0,
                            events=[Event('novelty', 'vision', T0 + 20.0, T0 + 21.5, 'odd')],
                            calm=[(T0 + 5.0, T0 + 19.5)])
    labels_path(bag).write_text(json.dumps(labels.to_json()))
    profile = _profile(tmp_path, {'snarc': ('sage_snarc', 'snarc_node',
                                            'sage_snarc.snarc_params')})
    out = io.StringIO()
    result = run_experiment(
        bag, str(profile),
        [['snarc.weights.surprise=1.0'],
         ['snarc.weights.surprise=0.0', 'snarc.weights.novelty=0.0']],
        out, work_dir=tmp_path / 'work')
    surprising, blind = (v['metrics'] for v in result['variants'])
    assert result['labelled'] and surprising['inputs'] == blind['inputs'] > 250
    assert surprising['attention_rate'] > blind['attention_rate']
    assert surprising['stored'] > blind['stored']
    assert surprising['scenario.recall'] == pytest.approx(1.0)
    assert 'scenario.false_alarms_per_min' in surprising
    assert Path(result['variants'][0]['decisions']).is_file()
    assert 'scenario.recall' in out.getvalue()
    # Two processes and the encoded-input cache: the variants differ in SNARC alone, so the
    # bag is encoded once, and the decisions are the same, in the variants' order.
    at_once = run_experiment(
        bag, str(profile),
        [['snarc.weights.surprise=1.0'],
         ['snarc.weights.surprise=0.0', 'snarc.weights.novelty=0.0']],
        io.StringIO(), work_dir=tmp_path / 'work2', jobs=2, cache=tmp_path / 'enc')
    assert len(list((tmp_path / 'enc').glob('*.pkl'))) == 1
    for one, two in zip(result['variants'], at_once['variants']):
        assert one['name'] == two['name'] and one['metrics'] == two['metrics']
        assert Path(one['decisions']).read_text() == Path(two['decisions']).read_text()
