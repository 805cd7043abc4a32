"""Issue 16 items 2-3: `sage bench graph` reports time to first salience per modality from the
graph's start, and capture -> salience latency per modality with audio measured from its
window's LAST sample (a Salience's audio stamp is the window's first sample)."""
from __future__ import annotations

import pytest

from sage_bench.graph import print_table
from sage_bringup.profile import load_profile
from sage_bench.salience_timing import (first_salience_input, first_salience_s, first_salience_seq,
                                        last_sample_offsets, latency_by_refinement,
                                        SalienceArrival, salience_latency_ms)


def test_first_salience_is_the_earliest_arrival_of_each_modality_after_the_start():
    arrivals = [SalienceArrival('imu', 102.5, 102.4), SalienceArrival('vision', 103.0, 102.99),
                SalienceArrival('imu', 102.2, 102.1), SalienceArrival('audio', 104.75, 103.0),
                SalienceArrival('vision', 105.0, 104.99)]
    assert first_salience_s(arrivals, started=100.0) == pytest.approx(
        {'audio': 4.75, 'imu': 2.2, 'vision': 3.0})


def test_the_first_salience_is_split_into_its_inputs_capture_and_its_scoring():
    # audio: the window's first sample at 1.0 s, its newest a window (1.024 s) later, scored
    # 0.1 s after that; vision: a frame captured at 1.5 s and scored at 1.52 s; the later
    # audio salience that arrived sooner after its capture is not the first
    arrivals = [SalienceArrival('audio', 102.124, 101.0), SalienceArrival('vision', 101.52, 101.5),
                SalienceArrival('audio', 102.3, 101.256)]
    parts = first_salience_input(arrivals, 100.0, {'audio': 1.024})
    assert parts['audio'] == pytest.approx({'first_sample_s': 1.0, 'newest_sample_s': 2.024,
                                            'scored_after_s': 0.1})
    assert parts['vision'] == pytest.approx({'first_sample_s': 1.5, 'newest_sample_s': 1.5,
                                             'scored_after_s': 0.02})
    first = first_salience_s(arrivals, 100.0)
    for m, p in parts.items():   # the parts add up to the first salience
        assert p['newest_sample_s'] + p['scored_after_s'] == pytest.approx(first[m])


def test_the_first_salience_seen_tells_how_many_inputs_came_before_it():
    arrivals = [SalienceArrival('vision', 103.0, 102.9, 7),
                SalienceArrival('vision', 102.5, 102.4, 6),
                SalienceArrival('audio', 104.0, 103.0, 0)]
    assert first_salience_seq(arrivals) == {'audio': 0, 'vision': 6}


def test_no_salience_gives_no_first_arrival():
    assert first_salience_s([], started=5.0) == {}


def test_audio_window_last_sample_is_window_samples_minus_one_after_its_stamp():
    params = {'audio_encoder': {'window_samples': 16384, 'sample_rate': 16000}}
    assert last_sample_offsets(params) == pytest.approx({'audio': 16383 / 16000})


def test_the_nano_profile_gives_the_audio_encoders_window():
    nodes = {n.name: n.parameters for n in load_profile('nano').nodes}
    offset = last_sample_offsets(nodes)['audio']
    enc = nodes['audio_encoder']
    assert offset == pytest.approx((enc['window_samples'] - 1) / enc['sample_rate'])
    assert offset > 0.5  # a ~1 s window, not a 32 ms frame


def test_audio_latency_is_measured_from_the_windows_last_sample_vision_from_its_frame():
    offsets = {'audio': 1.0}
    arrivals = [SalienceArrival('audio', 11.02, 10.0), SalienceArrival('audio', 11.28, 10.25),
                SalienceArrival('vision', 10.015, 10.0), SalienceArrival('vision', 10.025, 10.0)]
    lat = salience_latency_ms(arrivals, offsets)
    assert lat['audio']['n'] == 2
    assert lat['audio']['p50'] == pytest.approx(25.0)  # 20 and 30 ms after the last sample
    assert lat['vision']['p50'] == pytest.approx(20.0)
    assert lat['vision']['p95'] == pytest.approx(24.5)


def test_the_bench_table_has_one_row_per_modality_with_first_salience_and_latency():
    results = {'first_salience_s': {'audio': 2.5, 'vision': 1.25},
               'first_salience_input': {'audio': {'newest_sample_s': 2.4}},
               'salience_latency_ms': {'modalities': {
                   'vision': {'n': 3, 'p50': 12.0, 'p95': 20.0, 'p99': 21.0},
                   'imu': {'n': 0}}}}
    lines: list[str] = []
    print_table(results, lines.append)
    assert lines[0].split()[0] == 'modality'
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows == {'audio': ['2.50', '2.40', '0', '-', '-'], 'imu': ['-', '-', '0', '-', '-'],
                    'vision': ['1.25', '-', '3', '12.0', '20.0']}


def test_latency_is_split_by_whether_the_encoder_refined_the_input():
    # two unrefined frames 20 ms late, one refined frame 70 ms late, one frame no latent named
    arrivals = [SalienceArrival('vision', 10.02, 10.0), SalienceArrival('vision', 10.087, 10.067),
                SalienceArrival('vision', 10.203, 10.133), SalienceArrival('vision', 10.3, 10.2),
                SalienceArrival('audio', 11.03, 10.0)]
    iterations = {('vision', 10.0): 0, ('vision', 10.067): 0, ('vision', 10.133): 5,
                  ('audio', 10.0): 2}
    split = latency_by_refinement(arrivals, iterations, {'audio': 1.0})
    assert split['vision']['unrefined']['n'] == 2
    assert split['vision']['unrefined']['p50'] == pytest.approx(20.0)
    assert split['vision']['refined']['n'] == 1
    assert split['vision']['refined']['p50'] == pytest.approx(70.0)
    assert split['audio'] == {'refined': {'n': 1, 'p50': pytest.approx(30.0),
                                          'p95': pytest.approx(30.0),
                                          'p99': pytest.approx(30.0)}}
    results = {'first_salience_s': {}, 'salience_latency_ms': {'modalities': {},
                                                               'by_refinement': split}}
    lines: list[str] = []
    print_table(results, lines.append)
    assert any(line.startswith('vision capture->salience by refinement: refined n=1 p50 70.0')
               for line in lines)
