"""The benchmark runs every variant on the same inputs and reports comparable figures."""
from __future__ import annotations

import json

import pytest

from sage_bench.encoders import run_bench


def test_bench_compares_torch_ort_fp32_and_int8(minilm_dir) -> None:
    pytest.importorskip('torch')

    res = run_bench(0.2, models='vision,audio,language', variants='fp32,int8,torch')
    json.dumps(res)  # JSON-able
    for model in ('vision', 'audio', 'language'):
        assert set(res[model]) >= {'fp32', 'int8', 'torch'}
        for v in ('fp32', 'int8', 'torch'):
            r = res[model][v]
            assert r['encode']['p50_ms'] > 0 and r['encode']['p95_ms'] >= r['encode']['p50_ms']
            assert r['load_ms'] > 0 and 'rss_growth_mb' in r
    assert res['vision']['torch']['code_agreement_vs_ort_fp32'] == 1.0
    assert res['vision']['int8']['code_agreement_vs_ort_fp32'] >= 0.9
    assert res['language']['torch']['cosine_min_vs_ort_fp32'] > 0.9999
    assert res['vision']['core']['irp_4_steps_recon_reduction'] > 0
    assert set(res['targets']) >= {'vision_encode_p50_ms', 'audio_encode_p50_ms',
                                   'language_encode_p50_ms', 'vision_load_ms'}
