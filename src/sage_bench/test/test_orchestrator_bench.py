"""The benchmark runs the real core with N plugins and reports JSON-able percentiles."""
from __future__ import annotations

import json

from sage_bench.orchestrator import run_bench


def test_bench_reports_tick_cost_percentiles_for_ten_plugins():
    r = run_bench(0.2, plugins=10)
    json.dumps(r)
    assert r['plugins'] == 10 and r['ticks'] >= 20
    for key in ('tick_ms', 'tick_cpu_ms', 'report_us'):
        p = r[key]
        assert 0.0 < p['p50'] <= p['p95'] <= p['p99'] <= p['max']
    assert r['meets_target'] == (r['tick_cpu_ms']['p95'] <= r['target_p95_ms'])
