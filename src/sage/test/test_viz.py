"""Viz: marker layout and images (core), rviz/rqt configs, and the node's real messages."""
from __future__ import annotations

import json
import os
import re
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
import yaml

from sage.bag_types import message_class
from sage_bringup.paths import repo_root
from sage.viz_core import (GRAPH_TOPICS, MARKER_TOPIC, OVERLAY_TOPIC, AllocationRecord,
                           BudgetRecord, MarkerKind, StateRecord, StoredRecord, VizConfig,
                           VizCore, duplicate_ids, palette, puzzle_image, puzzle_topic)
from sage.viz_params import PARAMS, validate
from sage_common.params import resolve
from sage_common.records import AXES, SalienceRecord
from sage_common.ros import LATCHED_QOS, RELIABLE_QOS
from sage_common.vocabulary import absolute
from sage_interfaces.msg import (AtpAllocation, AtpBudget, Experience, Latent, MetabolicState,
                                 Salience)

# The run's domain block (root conftest) plus this file's own offset.
DOMAIN_ID = str(int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 9)
CONFIG = repo_root() / 'config'


def _sal(modality: str, value: float, attend: bool = False, stamp: float = 1.0,
         **axes: float) -> SalienceRecord:
    scores = {a: axes.get(a, 0.0) for a in AXES}
    return SalienceRecord(stamp=stamp, modality=modality, input_seq=0, salience=value,
                          threshold=0.5, attend=attend, **scores)


def _budget() -> BudgetRecord:
    return BudgetRecord(1.0, 7, 10.0, 1.0, 'WAKE', (
        AllocationRecord('vision_encoder', 'vision', 0.9, 0.5, 0.75, 6.0, 3.0),
        AllocationRecord('audio_encoder', 'audio', 0.8, 0.2, 0.25, 2.0, 2.0)))


def _full_core(**cfg) -> VizCore:
    core = VizCore(VizConfig(**cfg))
    core.on_salience(_sal('vision', 0.8, True, surprise=1.0, novelty=0.5), now=10.0)
    core.on_salience(_sal('audio', 0.2), now=10.0)
    core.on_budget(_budget())
    core.on_state(StateRecord(1.0, 'FOCUS', 'WAKE', 'vision salience high', 3.0, 0.4, 'green'))
    for k in range(7):
        core.on_stored(StoredRecord(float(k), f'{k:032x}', 'vision', 0.1 * k, 'jpeg', b'', ''))
    return core


def test_every_marker_has_a_unique_id_per_namespace_and_the_configured_lifetime():
    markers = _full_core(marker_lifetime_s=2.5).markers(now=10.2)
    assert markers and duplicate_ids(markers) == []
    assert {m.lifetime_s for m in markers} == {2.5}
    assert {'salience', 'salience_axes', 'atp', 'metabolic', 'memory'} <= {m.ns for m in markers}
    for m in markers:
        assert all(c >= 0.0 for c in m.scale) and 0.0 < m.color[3] <= 1.0
        if m.kind == MarkerKind.TEXT_VIEW_FACING:
            assert m.text and m.scale[2] > 0


def test_salience_bars_are_as_long_as_their_scores():
    core = _full_core()
    by_key = {(m.ns, m.id): m for m in core.markers(now=10.2)}
    vision_total, audio_total = by_key[('salience', 0)], by_key[('salience', 10)]
    assert vision_total.scale[0] == pytest.approx(0.8 * 2.0)
    assert audio_total.scale[0] == pytest.approx(0.2 * 2.0)
    assert by_key[('salience', 2)].scale[0] == pytest.approx(2.0)   # vision surprise = 1
    assert by_key[('salience', 3)].scale[0] == pytest.approx(1.0)   # vision novelty = 0.5
    assert 'attend 100%' in by_key[('salience', 7)].text


def test_window_mean_forgets_old_scores_but_keeps_the_latest_when_idle():
    core = VizCore(VizConfig(window_s=1.0))
    core.on_salience(_sal('vision', 1.0), now=0.0)
    core.on_salience(_sal('vision', 0.0), now=5.0)
    core.on_salience(_sal('vision', 0.5), now=5.5)
    assert core.window_means(now=5.6)['vision']['salience'] == pytest.approx(0.25)
    assert core.window_means(now=60.0)['vision']['salience'] == pytest.approx(0.5)


def test_atp_bars_scale_to_the_largest_allocation_and_label_every_plugin():
    core = _full_core()
    atp = {m.id: m for m in core.markers(now=10.2) if m.ns == 'atp'}
    assert atp[10].scale[0] == pytest.approx(2.0)         # vision atp 6 = top
    assert atp[11].scale[0] == pytest.approx(1.0)         # vision used 3
    assert atp[20].scale[0] == pytest.approx(2.0 / 3.0)   # audio atp 2
    assert 'vision_encoder' in atp[12].text and 'audio_encoder' in atp[22].text
    assert 'ATP 10.0' in atp[0].text


def test_metabolic_marker_takes_the_state_colour_and_memory_lists_the_newest_first():
    core = _full_core(stored_count=3)
    markers = core.markers(now=10.2)
    disc = next(m for m in markers if m.ns == 'metabolic' and m.kind == MarkerKind.SPHERE)
    assert disc.color == (0.20, 0.50, 1.00, 1.0)
    memory = sorted((m for m in markers if m.ns == 'memory'), key=lambda m: m.id)
    assert [m.text.split()[-1] for m in memory[1:]] == [f'{k:032x}'[:8] for k in (6, 5, 4)]


def test_puzzle_image_colours_each_cell_by_its_code():
    codes = np.arange(12, dtype=np.uint16).reshape(3, 4)
    img = puzzle_image(codes, 16, cell_px=5)
    assert img.shape == (15, 20, 3) and img.dtype == np.uint8
    pal = palette(16)
    assert (img[7, 12] == pal[codes[1, 2]]).all()
    assert len({tuple(c) for c in pal}) == 16  # distinct colours


def test_bad_puzzle_grids_are_refused():
    core = VizCore(VizConfig())
    with pytest.raises(ValueError, match='outside codebook'):
        core.on_grid('vision', np.full((2, 2), 9), codebook_size=4)
    with pytest.raises(ValueError, match='2-D'):
        core.on_grid('vision', np.zeros(5), codebook_size=4)


def test_overlay_is_drawn_over_the_vision_preview():
    core = VizCore(VizConfig(overlay_width=200))
    assert core.overlay_image(now=0.0) is None
    ok, jpeg = cv2.imencode('.jpg', np.full((60, 80, 3), 200, np.uint8))
    core.on_grid('vision', np.zeros((30, 30), np.uint16), 16, 'jpeg', jpeg.tobytes())
    core.on_salience(_sal('vision', 0.9, True), now=0.0)
    img = core.overlay_image(now=0.1)
    assert img.shape == (150, 200, 3)
    assert tuple(img[0, 0]) == (40, 220, 40)  # green frame: vision attended


def test_lifetime_shorter_than_the_marker_period_is_refused():
    assert resolve(PARAMS, {})['frame_id'] == 'base_link'  # the robot's base frame
    defaults = resolve(PARAMS, {})
    assert validate(defaults) == []
    assert validate({**defaults, 'marker_rate_hz': 2.0, 'marker_lifetime_s': 0.2})


def _topic_values(node) -> list[str]:
    """Every Topic entry of an rviz config (Topic: {Value: ...} or Topic: '/x')."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'Topic':
                found.append(value['Value'] if isinstance(value, dict) else value)
            else:
                found += _topic_values(value)
    elif isinstance(node, list):
        for item in node:
            found += _topic_values(item)
    return found


def test_rviz_config_shows_only_topics_the_graph_publishes():
    data = yaml.safe_load((CONFIG / 'sage.rviz').read_text())
    topics = _topic_values(data)
    assert set(topics) <= set(GRAPH_TOPICS), set(topics) - set(GRAPH_TOPICS)
    assert {absolute(MARKER_TOPIC), absolute(OVERLAY_TOPIC), absolute(puzzle_topic('vision'))} \
        <= set(topics)
    manager = data['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == resolve(PARAMS, {})['frame_id']
    classes = {d['Class'] for d in manager['Displays']}
    assert {'rviz_default_plugins/MarkerArray', 'rviz_default_plugins/Image'} <= classes


def test_rqt_perspective_plots_existing_fields_of_graph_topics():
    # lazy: keeps ROS out of this module's import
    from sage.viz_node import VizNode  # noqa: F401 - the node publishes the split topics
    data = json.loads((CONFIG / 'sage.perspective').read_text())
    plugins = data['groups']['pluginmanager']['groups']
    running = eval(data['groups']['pluginmanager']['keys']['running-plugins']['repr'])  # noqa
    assert {'rqt_plot/Plot', 'rqt_runtime_monitor/RuntimeMonitor'} <= set(running)
    types = {'/sage/budget': 'AtpBudget', '/sage/metabolic_state': 'MetabolicState',
             **{t: 'Salience' for t in GRAPH_TOPICS if t.startswith('/sage/viz/salience/')}}
    paths = []
    for name, group in plugins.items():
        if name.startswith('plugin__rqt_plot__Plot__'):
            paths += eval(group['groups']['plugin']['keys']['topics']['repr'])  # noqa: S307
    assert len(paths) >= 10
    for path in paths:
        topic = max((t for t in GRAPH_TOPICS if path.startswith(t + '/')), key=len)
        cls = message_class(f'sage_interfaces/msg/{types[topic]}')
        for field in path[len(topic) + 1:].split('/'):
            name = re.sub(r'\[\d+\]$', '', field)
            assert name in cls.get_fields_and_field_types(), path
            if name != field:
                cls = message_class(cls.get_fields_and_field_types()[name]
                                    .removeprefix('sequence<').removesuffix('>')
                                    .replace('/', '/msg/'))


def test_viz_node_publishes_markers_images_and_diagnostics(monkeypatch):
    # lazy: keeps ROS out of this module's import
    from visualization_msgs.msg import MarkerArray
    from sage.viz_node import VizNode
    monkeypatch.setenv('ROS_DOMAIN_ID', DOMAIN_ID)
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context)
    viz = VizNode(context=context, parameter_overrides=[
        Parameter('frame_id', value='test_frame'), Parameter('marker_rate_hz', value=10.0),
        Parameter('image_rate_hz', value=10.0), Parameter('marker_lifetime_s', value=0.5),
        Parameter('diagnostics_period_s', value=0.2)])
    test = Node('viz_test', context=context)
    got: dict[str, list] = {'markers': [], 'puzzle': [], 'overlay': [], 'diag': [], 'split': []}
    test.create_subscription(MarkerArray, MARKER_TOPIC, got['markers'].append, 10)
    test.create_subscription(Image, puzzle_topic('vision'), got['puzzle'].append, 10)
    test.create_subscription(Image, OVERLAY_TOPIC, got['overlay'].append, 10)
    test.create_subscription(DiagnosticArray, '/diagnostics', got['diag'].append, 50)
    test.create_subscription(Salience, '/sage/viz/salience/vision', got['split'].append, 10)
    pubs = {'sal': test.create_publisher(Salience, '/sage/salience', RELIABLE_QOS),
            'budget': test.create_publisher(AtpBudget, '/sage/budget', RELIABLE_QOS),
            'state': test.create_publisher(MetabolicState, '/sage/metabolic_state',
                                           LATCHED_QOS),
            'stored': test.create_publisher(Experience, '/sage/memory/stored', RELIABLE_QOS),
            'latent': test.create_publisher(Latent, '/sage/vision/latent', RELIABLE_QOS)}
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(viz)
    executor.add_node(test)
    _, jpeg = cv2.imencode('.jpg', np.full((48, 64, 3), 128, np.uint8))
    good = Latent(modality='vision', grid_height=30, grid_width=30, codebook_size=512,
                  codes=[k % 512 for k in range(900)], preview_format='jpeg',
                  preview=jpeg.tobytes())
    good.header.frame_id = 'camera_optical_frame'  # the camera's, passed on by the encoder
    bad = Latent(modality='vision', grid_height=30, grid_width=30, codebook_size=4,
                 codes=[7] * 900)

    def spin(seconds: float, until=lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            executor.spin_once(timeout_sec=0.02)

    try:
        pubs['state'].publish(MetabolicState(state='REST', reason='quiet for 30 s'))
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not got['overlay']:
            pubs['sal'].publish(Salience(modality='vision', salience=0.7, surprise=0.9,
                                         threshold=0.5, attend=True))
            pubs['budget'].publish(AtpBudget(budget_total=8.0, allocations=[AtpAllocation(
                plugin='vision_encoder', modality='vision', atp=4.0, atp_used=2.0)]))
            pubs['stored'].publish(Experience(uuid='ab' * 16, modality='vision',
                                              salience=0.7))
            pubs['latent'].publish(good)
            spin(0.15)
        spin(0.6)
        healthy = [s for a in got['diag'] for s in a.status if s.name == 'sage: viz']
        pubs['latent'].publish(bad)
        spin(3.0, until=lambda: any(s.level == DiagnosticStatus.WARN for a in got['diag']
                                    for s in a.status if s.name == 'sage: viz'))
    finally:
        executor.shutdown()
        viz.destroy_node()
        test.destroy_node()
        rclpy.try_shutdown(context=context)

    array = got['markers'][-1]
    keys = [(m.ns, m.id) for m in array.markers]
    assert len(keys) == len(set(keys))
    assert {m.header.frame_id for m in array.markers} == {'test_frame'}
    assert all(m.lifetime.sec == 0 and m.lifetime.nanosec == 500_000_000
               for m in array.markers)
    assert {'salience', 'atp', 'metabolic', 'memory'} <= {m.ns for m in array.markers}
    assert any('REST' in m.text and 'quiet for 30 s' in m.text for m in array.markers)
    puzzle = got['puzzle'][-1]
    assert (puzzle.height, puzzle.width, puzzle.encoding) == (240, 240, 'rgb8')
    assert puzzle.step == 240 * 3 and len(puzzle.data) == 240 * 240 * 3
    assert got['overlay'][-1].width == 320 and got['split'][0].salience == pytest.approx(0.7)
    # drawn over the camera's picture: in the camera's frame, not the markers'
    assert got['overlay'][-1].header.frame_id == 'camera_optical_frame'
    assert puzzle.header.frame_id == 'camera_optical_frame'
    assert healthy and healthy[-1].level == DiagnosticStatus.OK
    values = {kv.key: kv.value for kv in healthy[-1].values}
    assert int(values['salience_in']) > 0 and int(values['markers_out']) > 0
    assert 'markers_p50_ms' in values and values['metabolic_state'] == 'REST'
    warned = [s for a in got['diag'] for s in a.status
              if s.name == 'sage: viz' and s.level == DiagnosticStatus.WARN]
    assert warned and 'outside codebook' in warned[-1].message
    assert {kv.key: kv.value for kv in warned[-1].values}['dropped'] == '1'
