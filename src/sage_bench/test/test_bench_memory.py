"""`sage bench memory` on the robot workload: rows from real content, as the nodes write them."""
from __future__ import annotations

import inspect
import io

import pytest
import soundfile as sf

from sage_bench.memory import describe, robot_rows, run_bench
from sage_bench.memory_figures import run_figures


@pytest.fixture(scope='module')
def rows():
    return robot_rows('nano', seed=0, vision_share=0.5)


def test_robot_rows_are_the_encoders_and_the_policys_on_real_photos_and_recordings(rows):
    parts = describe(rows)
    assert set(parts) == {'vision/full', 'vision/summary', 'audio/full', 'audio/summary'}
    assert parts['vision/full']['preview_format'] == ['webp']
    assert parts['audio/full']['preview_format'] == ['wav']
    # Code grids as the shipped models make them: 30x30 of 128 codes (7 bits), 16x16 of 64.
    assert parts['vision/full']['codes_bytes'] == 788.0
    assert parts['audio/full']['codes_bytes'] == 192.0
    assert parts['vision/summary']['codes_bytes'] == parts['audio/summary']['codes_bytes'] == 0
    # The nano policy keeps the top fifth of stored inputs at full fidelity.
    full = parts['vision/full']['share'] + parts['audio/full']['share']
    assert 0.15 < full < 0.35
    # Real thumbnails and clips differ from row to row (not one payload repeated).
    for modality in ('vision', 'audio'):
        mine = [r.preview for r in rows if r.modality == modality]
        assert len(set(mine)) >= 60, modality  # 144 crops, 72 windows, repeated to the mix
    assert all(r.extra['features'] for r in rows)
    # The nano profile's clips are GSM 06.10 WAVs: 906 B per 0.5 s, not 2,108 of IMA ADPCM.
    clip = next(r.preview for r in rows if r.modality == 'audio')
    assert sf.info(io.BytesIO(clip)).subtype == 'GSM610'
    assert parts['audio/full']['preview_bytes'] < 1000


def test_a_short_bench_reports_the_workload_and_bytes_per_row_above_its_payload(rows):
    out = run_bench(seconds=1.0, workload='robot', rows=600, rate=400.0, queries=20,
                    flood_rows=200, backends='sqlite')
    assert out['workload']['name'] == 'robot' and out['params']['dim'] == 32
    got = out['sqlite']
    assert got['rows'] == 600 and got['recall_at_k'] >= 0.9
    assert got['sustained']['rows'] >= 300
    payload = sum(p['share'] * (p['preview_bytes'] + p['codes_bytes'] + p['extra_bytes'])
                  for p in out['workload']['rows'].values())
    assert payload < got['disk']['bytes_per_row'] < 3 * payload


def test_an_unknown_workload_is_refused():
    with pytest.raises(ValueError, match="'store', 'robot' or 'random'"):
        run_bench(seconds=1.0, workload='mixed')


def test_the_default_bench_reports_issue_50s_figures_on_100k_rows_of_384_d():
    defaults = {k: v.default for k, v in inspect.signature(run_figures).parameters.items()}
    assert (defaults['rows'], defaults['dim']) == (100_000, 384)
    assert inspect.signature(run_bench).parameters['workload'].default == 'store'
    out = run_bench(rows=6000, dim=32, queries=30, reopens=2)
    f = out['figures']
    assert set(out['met']) == {'durable_inserts_per_s', 'reopen_to_first_result_s',
                               'bytes_per_row', 'recall_at_10', 'knn_p95_ms'}
    assert out['durable']['rows'] == 6000 and f['durable_inserts_per_s'] > 0
    assert f['reopen_to_first_result_s']['n'] == 2 and f['knn_ms']['n'] == 30
    assert f['recall_at_10'] >= 0.9 and 300 < f['bytes_per_row'] < 2000
