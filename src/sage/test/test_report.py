"""`sage report`: plots and an HTML page from a bag the test writes."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from sage.bag_types import sage_typestore
from sage.report import ReportError, find_bag, load_run, make_report, state_spans, summary_rows
from sage_eval.scenario import Event, labels_path, ScenarioLabels
from sage_interfaces.msg import AtpAllocation, AtpBudget, Experience, MetabolicState, Salience

T0 = 1_700_000_000 * 10**9


def _jpeg(value: int) -> bytes:
    ok, buf = cv2.imencode('.jpg', np.full((24, 32, 3), value, np.uint8))
    assert ok
    return buf.tobytes()


def write_run_bag(path: Path) -> dict[str, int]:
    """Write a 10 s run.

    Vision at 10 Hz (every 4th attended), audio at 5 Hz, budgets, two metabolic states and
    three stored experiences with JPEG previews.
    """
    store = sage_typestore()
    msgs: list[tuple[str, int, object]] = []
    for k in range(100):
        msgs.append(('/sage/salience', T0 + k * 10**8, Salience(
            modality='vision', surprise=0.5, novelty=0.25, salience=0.75 if k % 4 == 0 else 0.25,
            threshold=0.5, attend=k % 4 == 0, input_seq=k)))
    for k in range(50):
        msgs.append(('/sage/salience', T0 + k * 2 * 10**8 + 5, Salience(
            modality='audio', arousal=1.0, salience=0.125, threshold=0.5, attend=False)))
    for k in range(20):
        msgs.append(('/sage/budget', T0 + k * 5 * 10**8, AtpBudget(
            tick=k, budget_total=10.0, allocations=[
                AtpAllocation(plugin='vision_encoder', modality='vision', atp=6.0,
                              atp_used=5.0),
                AtpAllocation(plugin='audio_encoder', modality='audio', atp=4.0,
                              atp_used=1.0)])))
    msgs.append(('/sage/metabolic_state', T0, MetabolicState(state='WAKE', reason='start')))
    msgs.append(('/sage/metabolic_state', T0 + 6 * 10**9, MetabolicState(
        state='FOCUS', previous='WAKE', reason='vision salience 0.75')))
    for k in range(3):
        msgs.append(('/sage/memory/stored', T0 + (2 + k) * 10**9, Experience(
            uuid=f'{k:02d}' * 16, modality='vision', salience=0.75, preview_format='jpeg',
            preview=_jpeg(60 * k))))
    types = {'/sage/salience': 'Salience', '/sage/budget': 'AtpBudget',
             '/sage/metabolic_state': 'MetabolicState', '/sage/memory/stored': 'Experience'}
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conns = {t: writer.add_connection(t, f'sage_interfaces/msg/{n}', typestore=store)
             for t, n in types.items()}
    for topic, stamp, msg in sorted(msgs, key=lambda m: m[1]):
        writer.write(conns[topic], stamp, serialize_message(msg))
    writer.close()
    return {'vision': 100, 'audio': 50}


def test_run_data_counts_decisions_and_state_stretches(tmp_path):
    write_run_bag(tmp_path / 'bag')
    data = load_run(tmp_path)  # a run folder: the bag is found in bag/
    rows = {r['modality']: r for r in summary_rows(data)}
    assert rows['vision']['inputs'] == 100 and rows['vision']['attended'] == 25
    assert rows['vision']['attention_rate'] == pytest.approx(0.25)
    assert rows['vision']['stored'] == 3 and rows['audio']['attended'] == 0
    assert rows['audio']['arousal'] == pytest.approx(1.0)
    spans = state_spans(data)
    assert [(s[2], s[3]) for s in spans] == [('WAKE', 'start'), ('FOCUS', 'vision salience 0.75')]
    assert spans[0][1] == pytest.approx(6.0) and spans[1][1] == pytest.approx(data.duration_s)
    assert data.stored[0][1].preview == _jpeg(0)


def test_report_writes_plots_thumbnails_and_a_page(tmp_path):
    # lazy: keeps matplotlib out of this module's import
    import matplotlib.image as mpimg
    write_run_bag(tmp_path / 'run' / 'bag')
    page = make_report(tmp_path / 'run', tmp_path / 'out')
    assert page == tmp_path / 'out' / 'index.html'
    text = page.read_text()
    for name in ('salience', 'decisions', 'atp', 'metabolic'):
        png = tmp_path / 'out' / f'{name}.png'
        img = mpimg.imread(png)
        assert img.shape[0] > 100 and img.shape[1] > 500, name
        assert img[..., :3].std() > 0.01, f'{name}.png is blank'
        assert f'src="{name}.png"' in text
    thumbs = sorted((tmp_path / 'out' / 'thumbs').glob('*.jpg'))
    assert len(thumbs) == 3 and thumbs[1].read_bytes() == _jpeg(60)
    assert all(f'thumbs/{t.name}' in text for t in thumbs)
    assert '25.0%' in text and 'FOCUS' in text and 'vision salience 0.75' in text


def test_report_to_an_html_path_puts_images_beside_it(tmp_path):
    write_run_bag(tmp_path / 'bag')
    page = make_report(tmp_path / 'bag', tmp_path / 'r.html')
    assert page == tmp_path / 'r.html'
    assert (tmp_path / 'r_files' / 'salience.png').is_file()
    assert 'src="r_files/salience.png"' in page.read_text()


def test_report_refuses_a_folder_without_a_bag(tmp_path):
    with pytest.raises(ReportError, match='no rosbag2 bag'):
        find_bag(tmp_path)


def _labelled_bag(path: Path) -> Path:
    """10 s of vision and audio salience (stamped) and the labels of the scene it scores."""
    start = T0 / 1e9
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conn = writer.add_connection('/sage/salience', 'sage_interfaces/msg/Salience',
                                 typestore=sage_typestore())
    for k in range(100):
        for modality in ('vision', 'audio'):
            hit = modality == 'vision' and k == 31  # the object is caught, the clap is not
            msg = Salience(modality=modality, novelty=0.9 if hit else 0.1,
                           surprise=0.3, salience=0.7 if hit else 0.1, threshold=0.4,
                           attend=hit, input_seq=k)
            ns = T0 + k * 10**8
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
            writer.write(conn, ns, serialize_message(msg))
    writer.close()
    labels = ScenarioLabels(
        seed=7, program='short', duration_s=10.0, start=start, warmup_s=1.0,
        events=[Event('object_appears', 'vision', start + 3.0, start + 3.5, 'object:cup'),
                Event('clap', 'audio', start + 5.0, start + 5.1, 'impact:punch')],
        calm=[(start + 7.0, start + 10.0)])
    labels_path(path).write_text(json.dumps(labels.to_json()))
    return labels_path(path)


def test_a_report_of_a_labelled_scene_shows_each_event_and_the_axis_that_caught_it(tmp_path):
    # lazy: keeps matplotlib out of this module's import
    import matplotlib.image as mpimg
    labels = _labelled_bag(tmp_path / 'scene_run')
    page = make_report(tmp_path / 'scene_run', tmp_path / 'out')  # labels found beside the bag
    text = page.read_text()
    assert 'Labelled events: 1 of 2 caught' in text
    row = text.split('object_appears: object:cup')[1].split('</tr>')[0]
    assert '<td>yes</td>' in row and '<td>novelty</td>' in row and '<td>0.90</td>' in row
    assert '<b>missed</b>' in text.split('clap: impact:punch')[1].split('</tr>')[0]
    img = mpimg.imread(tmp_path / 'out' / 'events.png')
    assert img[..., :3].std() > 0.01
    # The same with the labels given, and a clear error for labels of another scene.
    assert 'Labelled events' in make_report(tmp_path / 'scene_run', tmp_path / 'o2',
                                            labels).read_text()
    other = tmp_path / 'other.labels.json'
    other.write_text(labels.read_text().replace(f'"start": {T0 / 1e9}', '"start": 1.0'))
    with pytest.raises(ReportError, match='outside the scene'):
        make_report(tmp_path / 'scene_run', tmp_path / 'o3', other)
