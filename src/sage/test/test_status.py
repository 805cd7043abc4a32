"""`sage status`: the screen model and a live run against a small publisher."""
from __future__ import annotations

import io
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import rclpy
from rclpy.node import Node
from rich.console import Console
import yaml

from sage_bringup.paths import config_dir
from sage.status import run_status
from sage.status_model import StatusModel, WindowedStats
from sage.status_render import render, render_text, sparkline
from sage.viz_core import AllocationRecord, BudgetRecord, StateRecord, StoredRecord
from sage_common.records import SalienceRecord
from sage_common.ros import LATCHED_QOS, RELIABLE_QOS
from sage_interfaces.msg import AtpAllocation, AtpBudget, Experience, MetabolicState, Salience

# The run's domain block (root conftest) plus this file's own offset.
DOMAIN_ID = str(int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 10)


def _row(text: str, first: str) -> str:
    """The table line whose first cell is `first`."""
    return next(line for line in text.splitlines()
                if line.replace('│', ' ').split()[:1] == [first])


def _sal(modality: str, stamp: float, value: float, attend: bool) -> SalienceRecord:
    return SalienceRecord(stamp=stamp, modality=modality, input_seq=0, surprise=0.11,
                          novelty=0.22, arousal=0.33, reward=0.44, conflict=0.55,
                          salience=value, threshold=0.5, attend=attend)


def test_sparkline_maps_zero_to_the_lowest_and_one_to_the_highest_block():
    assert sparkline([0.0, 0.5, 1.0], 10) == '▁▅█'
    assert len(sparkline([0.1] * 500, 40)) == 40
    assert sparkline([], 5) == ''


def test_windowed_stats_keep_more_than_the_default_history():
    stats = WindowedStats(history=300)
    for k in range(250):
        stats.on_salience(_sal('vision', k * 0.01, 0.5, False))
        stats.on_salience(_sal('tactile', k * 0.01, 0.5, False))  # a modality added later
    assert len(stats.modalities['vision'].recent) == 250
    assert len(stats.modalities['tactile'].recent) == 250
    assert stats.inputs_total == 500


def test_screen_shows_window_means_budget_state_nodes_and_memory():
    now = [100.0]
    model = StatusModel(window_s=2.0, clock=lambda: now[0])
    model.stats.on_salience(_sal('vision', 0.0, 0.99, True))   # outside the 2 s window
    for k in range(10):
        model.stats.on_salience(_sal('vision', 10.0 + k * 0.1, 0.40, k < 5))
    model.budget = BudgetRecord(0.0, 42, 12.5, 2.0, 'FOCUS', (
        AllocationRecord('vision_encoder', 'vision', 0.87, 0.4, 0.6, 7.5, 6.25),))
    model.on_state(StateRecord(0.0, 'FOCUS', 'WAKE', 'loud clap on audio', 4.0, 0.35, 'green'))
    model.on_diagnostic('sage: memory', 1, 'disk almost full',
                        {'rows': '1234', 'stored_per_s': '2.50', 'dropped': '7'})
    model.stats.on_stored('vision')
    model.on_stored(StoredRecord(0.0, 'cafe' * 8, 'vision', 0.81, 'jpeg', b'', ''))
    text = render_text(model)
    vision_row = _row(text, 'vision')
    assert '0.40' in vision_row and '50%' in vision_row and '0.99' not in vision_row
    assert '0.11' in vision_row and '0.55' in vision_row
    assert 'vision_encoder' in text and '7.50' in text and '6.25' in text and 'tick 42' in text
    assert 'FOCUS' in text and 'loud clap on audio' in text
    memory_row = _row(text, 'memory')
    assert 'WARN' in memory_row and 'stored=2.5' in memory_row and '│ 7 ' in memory_row
    assert 'disk almost full' in memory_row
    assert 'size 1234' in text and 'cafecafecafe' in text
    now[0] += 60.0
    assert 'STALE' in render_text(model)


NANO_NODES = list(yaml.safe_load((config_dir() / 'nano.yaml').read_text())['launch']['nodes'])
MODALITIES = ('vision', 'audio', 'imu', 'language')
PLUGINS = ('vision_encoder', 'audio_encoder', 'language_encoder', 'working_memory_recall')


def _busy_model() -> StatusModel:
    """Everything at once: four modalities, every nano node, four ATP plugins, five stored."""
    model = StatusModel(window_s=10.0, clock=lambda: 100.0, domain='42 (from profile nano)')
    for k in range(30):
        for m in MODALITIES:
            model.stats.on_salience(_sal(m, 10.0 + k * 0.1, 0.40, k % 3 == 0))
    model.budget = BudgetRecord(0.0, 42, 12.5, 2.0, 'FOCUS', tuple(
        AllocationRecord(p, p.split('_')[0], 0.87, 0.25, 0.6, 3.5, 2.25) for p in PLUGINS))
    model.on_state(StateRecord(0.0, 'FOCUS', 'WAKE', 'loud clap on audio', 4.0, 0.35, 'green'))
    for node in NANO_NODES:
        model.on_diagnostic(f'sage: {node}', 0, 'ok',
                            {'rows': '1234', 'published': '900', 'published_per_s': '30.00',
                             'dropped': '3', 'errors': '0', 'encode_p50_ms': '12.345'})
    for _ in range(5):
        model.stats.on_stored('vision')
        model.on_stored(StoredRecord(0.0, 'cafe' * 8, 'vision', 0.81, 'jpeg', b'', ''))
    return model


def _screen(model: StatusModel, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, record=True, file=io.StringIO(),
                      force_terminal=False, color_system=None)
    console.print(render(model, console.size))
    return console.export_text().splitlines()


def _cells(line: str) -> list[str]:
    return line.replace('│', ' ').split()


def _sections(lines: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Rows of the compact screen's salience and node tables, by first cell."""
    tables = []
    for i, line in enumerate(lines):
        if _cells(line)[:1] in (['modality'], ['node']):
            rows = {}
            for row in lines[i + 1:]:
                cells = _cells(row)
                if not cells or cells[0] in ('Nodes', 'Memory', '…'):
                    break
                rows[cells[0]] = cells
            tables.append(rows)
    return tables[0], tables[1]


def test_status_fits_an_80x24_terminal_with_every_label_and_value_whole():
    lines = _screen(_busy_model(), 80, 24)
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80, '\n'.join(lines)
    text = '\n'.join(lines)
    assert '…' not in text  # nothing truncated
    headers = [line for line in lines if _cells(line)[:1] in (['modality'], ['node'])]
    assert _cells(headers[0]) == ['modality', 'in/s', 'att', 'stored', 'surp', 'nove', 'arou',
                                  'rewa', 'conf', 'sal', 'thr', 'trend']
    assert _cells(headers[1]) == ['node', 'level', 'rate/s', 'drops', 'err', 'p50ms', 'atp',
                                  'used', 'trust', 'message']
    salience, rows = _sections(lines)
    for m in MODALITIES:
        cells = salience[m]
        assert cells[1:4] == ['10.0', '33%', '5' if m == 'vision' else '0'], cells
        assert cells[4:11] == ['0.11', '0.22', '0.33', '0.44', '0.55', '0.40', '0.50']
    for node in NANO_NODES:
        assert rows[node][1:6] == ['OK', '30.0', '3', '0', '12.3'], rows[node]
    for plugin in PLUGINS:
        assert rows[plugin][6:9] == ['3.50', '2.25', '0.87'], rows[plugin]
    assert rows['working_memory_recall'][1] == '-'  # a plugin without a node of its own
    assert 'domain 42' in lines[0] and 'FOCUS' in text and 'loud clap on audio' in text
    assert 'ATP total 12.5' in text and 'size 1234' in text
    # With nano's twelve nodes, every node row comes before the last stored experience's line
    # on 24 rows; one row more shows it too.
    assert 'cafecafecafe' in '\n'.join(_screen(_busy_model(), 80, 25))


def test_a_short_terminal_keeps_the_worst_nodes_and_counts_the_rest():
    model = _busy_model()
    model.on_diagnostic('sage: snarc', 2, 'imu late', {})
    lines = _screen(model, 80, 18)
    assert len(lines) <= 18, '\n'.join(lines)
    salience, rows = _sections(lines)
    assert rows['snarc'][1] == 'ERROR' and 'imu late' in ' '.join(rows['snarc'])
    everything = set(NANO_NODES) | set(PLUGINS)
    hidden = len(everything - set(rows))
    more = next(line for line in lines if 'more nodes' in line)
    assert hidden > 0 and f'… {hidden} more nodes:' in more
    assert set(salience) == set(MODALITIES)


def test_memory_notes_stay_whole_on_a_small_terminal():
    model = _busy_model()
    path = '/home/robot/.local/share/sage/sage_memory.db.corrupt-20261122-110000'
    model.on_diagnostic('sage: memory', 2, 'quarantined', {'rows': '0', 'quarantined': path})
    lines = _screen(model, 80, 24)
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80, '\n'.join(lines)
    assert path in ''.join(''.join(lines).split())  # folded over rows, never cut
    assert 'NOTE: quarantined corrupt database' in '\n'.join(lines)


def test_a_large_terminal_still_gets_the_full_screen():
    text = '\n'.join(_screen(_busy_model(), 140, 60))
    for title in ('Metabolic state', 'Nodes (/diagnostics)', 'salience trend'):
        assert title in text


def _publish(stop: threading.Event, ready: threading.Event) -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('status_test_publisher', context=context)
    sal = node.create_publisher(Salience, '/sage/salience', RELIABLE_QOS)
    budget = node.create_publisher(AtpBudget, '/sage/budget', RELIABLE_QOS)
    state = node.create_publisher(MetabolicState, '/sage/metabolic_state', LATCHED_QOS)
    stored = node.create_publisher(Experience, '/sage/memory/stored', RELIABLE_QOS)
    diag = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
    status = DiagnosticStatus(level=DiagnosticStatus.WARN, name='sage: snarc',
                              message='imu late by 80 ms',
                              values=[KeyValue(key='scored_per_s', value='19.50'),
                                      KeyValue(key='dropped', value='4'),
                                      KeyValue(key='score_p50_ms', value='1.25')])
    state.publish(MetabolicState(state='CRISIS', previous='WAKE', reason='imu shock 3.2 g',
                                 dwell_s=2.0, atp_reserve=0.1, memory_pressure='yellow'))
    ready.set()
    k = 0
    try:
        while not stop.is_set():
            t = time.time()
            for modality, value in (('vision', 0.625), ('audio', 0.375)):
                msg = Salience(modality=modality, salience=value, surprise=0.875, novelty=0.25,
                               threshold=0.5, attend=value > 0.5, input_seq=k)
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(t % 1 * 1e9)
                sal.publish(msg)
            budget.publish(AtpBudget(tick=k, budget_total=9.0, metabolic_state='CRISIS',
                                     allocations=[AtpAllocation(plugin='audio_encoder',
                                                                modality='audio', atp=3.25,
                                                                atp_used=1.5, share=0.5)]))
            if k % 10 == 0:
                diag.publish(DiagnosticArray(status=[status]))
                stored.publish(Experience(uuid='beef' * 8, modality='vision', salience=0.625))
            k += 1
            time.sleep(0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_status_screen_shows_what_the_graph_publishes(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', DOMAIN_ID)
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    stop, ready = threading.Event(), threading.Event()
    publisher = threading.Thread(target=_publish, args=(stop, ready))
    publisher.start()
    out = io.StringIO()
    try:
        assert ready.wait(10)
        code = run_status(duration=4.0, once=True, out=out)
    finally:
        stop.set()
        publisher.join(timeout=10)
    text = out.getvalue()
    assert code == 0, text
    rows = {m: _row(text, m) for m in ('vision', 'audio')}
    assert '0.62' in rows['vision'] and '100%' in rows['vision'] and '0.88' in rows['vision']
    assert '0.38' in rows['audio'] and ' 0%' in rows['audio']
    assert 'CRISIS' in text and 'imu shock 3.2 g' in text and 'yellow' in text
    assert 'audio_encoder' in text and '3.25' in text and '1.50' in text
    assert 'beefbeefbeef' in text
    snarc = _row(text, 'snarc')
    assert 'WARN' in snarc and 'scored=19.5' in snarc and '│ 4 ' in snarc
    assert 'score=1.2' in snarc and 'imu late by 80 ms' in snarc


def test_status_says_so_when_nothing_is_heard(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(int(DOMAIN_ID) + 1))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    out = io.StringIO()
    assert run_status(duration=0.5, once=True, out=out) == 1
    assert 'no messages yet' in out.getvalue()
