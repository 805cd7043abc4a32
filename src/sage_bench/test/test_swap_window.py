"""What a hot swap cost, from a probe's arrivals (sage_bench.swap_window), and the bench's
promotion
of new versions into a memory folder of its own (sage_bench.graph.promote_copies)."""
from __future__ import annotations

import json

from sage_bench.graph import promote_copies
from sage_bench.swap_window import swap_report
from sage_encoders.model_files import PACKAGED_DIR
from sage_encoders.model_versions import ModelVersions

T = 1000.0


def _stream(rate_hz: float, start: float, end: float, skip=()) -> list:
    """(arrival, stamp, seq) every 1/rate s; inputs whose time falls in a skip range are gone."""
    out, t, seq = [], start, 0
    while t < end:
        if not any(a <= t < b for a, b in skip):
            out.append((t + 0.05, t, seq))  # arrives 50 ms after capture
        t += 1.0 / rate_hz
        seq += 1
    return out


def test_a_stall_during_the_swap_shows_as_lost_latents_dropped_frames_and_a_long_wait():
    camera = _stream(15.0, T - 10, T + 10)
    # vision encodes every frame but stalls 0.6 s after the promotion (T); audio loses one hop
    vision = [r for r in camera if not T + 0.2 <= r[1] < T + 0.8]
    audio = _stream(4.0, T - 10, T + 10, skip=[(T + 0.2, T + 0.3)])
    out = swap_report(T, {'vision': T + 1.0, 'audio': T + 1.0}, camera,
                      {'vision': vision, 'audio': audio}, 'v0001')
    v, a = out['modalities']['vision'], out['modalities']['audio']
    assert v['reported_after_s'] == 1.0 and v['swap']['seconds'] == 2.0
    assert v['baseline']['not_encoded'] == 0 and v['swap']['not_encoded'] == 9
    assert v['latents_lost'] == 9
    assert v['comparable'] and v['frames_lost'] == 9
    assert v['swap']['camera_hz'] == v['baseline']['camera_hz'] == 15.0
    assert v['swap']['max_wait_ms'] > 600 > v['baseline']['max_wait_ms']
    assert a['swap']['seq_gaps'] == 1 and a['baseline']['seq_gaps'] == 0
    assert a['latents_lost'] == 1
    json.dumps(out)


def test_an_encoder_that_already_drops_frames_loses_none_to_a_swap_that_costs_nothing():
    # at 30 fps the encoder keeps every other frame, before and during the swap
    camera = _stream(30.0, T - 10, T + 10)
    vision = camera[::2]
    out = swap_report(T, {'vision': T + 1.0}, camera, {'vision': vision}, 'v0001',
                      {'vision': 15.5})
    v = out['modalities']['vision']
    assert v['swap']['not_encoded'] >= 25 and v['baseline']['not_encoded'] >= 25
    assert v['comparable'] and v['frames_lost'] == 0
    assert v['load_ms'] == 15.5
    # the same encoder stalling 0.5 s during the swap loses the frames it would have kept
    stalled = [r for r in vision if not T + 0.2 <= r[1] < T + 0.7]
    v = swap_report(T, {'vision': T + 1.0}, camera, {'vision': stalled},
                    'v0001')['modalities']['vision']
    assert v['frames_lost'] in (7, 8)


def test_a_camera_rate_change_across_the_promotion_is_not_compared():
    # the orchestrator went from FOCUS (30 fps) to WAKE (15 fps) as the version was promoted
    camera = _stream(30.0, T - 10, T) + _stream(15.0, T, T + 10)
    out = swap_report(T, {'vision': T + 1.0}, camera, {'vision': camera[::2]}, 'v0001')
    v = out['modalities']['vision']
    # (arrivals lag capture by 50 ms: the window's first arrivals are the last 30 fps frames)
    assert v['baseline']['camera_hz'] == 30.0 and 15.0 <= v['swap']['camera_hz'] <= 16.0
    assert v['comparable'] is False and 'frames_lost' not in v


def test_a_swap_the_encoder_never_reported_is_said_so():
    out = swap_report(T, {'vision': None}, [], {'vision': _stream(10, T - 5, T + 5)}, 'v0002')
    assert out['modalities']['vision'] == {'swapped': False}


def test_frames_newer_than_the_last_latent_are_not_counted_as_dropped():
    camera = _stream(15.0, T - 5, T + 3)
    vision = [r for r in camera if r[1] < T + 0.5]  # the run ended before the rest was encoded
    out = swap_report(T, {'vision': T + 0.2}, camera, {'vision': vision}, 'v0001')
    assert out['modalities']['vision']['swap']['not_encoded'] == 0


def test_promote_copies_makes_one_whole_version_of_each_packaged_model_live(tmp_path):
    assert promote_copies(tmp_path, ('vision', 'audio')) == 'v0001'
    for m in ('vision', 'audio'):
        v = ModelVersions(tmp_path, m)
        assert v.live_version() == 'v0001'
        files = {p.name for p in v.live_path().iterdir()} - {'version.json'}
        assert files == {p.name for p in PACKAGED_DIR.glob(f'{m}_*')}
