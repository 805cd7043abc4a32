"""Two hosts, one robot: text sent on the edge is encoded on the assist host and scored by the
edge's SNARC, over an emulated link between network namespaces (sage.two_hosts), through the
real `sage bench twohost` (two `sage launch --role` graphs and a probe)."""
from __future__ import annotations

import os

import pytest

from sage.bench_twohost import run_bench
from sage.two_hosts import available

pytestmark = pytest.mark.graph

# The edge keeps only SNARC: the language encoder it lacks runs on the assist host.
LIGHT_EDGE = 'camera,microphone,imu,vision_encoder,audio_encoder,viz,memory,orchestrator'


def test_text_crosses_to_the_assist_host_and_back_to_the_edge_snarc(ros_domain):
    why = available()
    if why:
        if os.environ.get('CI') in ('true', '1'):  # CI machines must run it
            pytest.fail(why)
        pytest.skip(why)
    result = run_bench(seconds=8.0, rate_hz=2.0, delays_ms='0,10', loss_pct='5', cut=True,
                       edge_without=LIGHT_EDGE, domain_id=ros_domain)
    print({k: v for k, v in result.items() if k != 'logs_tail'})
    assert result['exit_codes'] == {'assist': 0, 'edge': 0}, result['logs_tail']
    # The assist host has the only full-time language encoder; the edge's waits for it.
    assert result['edge_nodes'] == ['language_encoder', 'snarc']
    assert result['assist_nodes'] == ['language_encoder']
    clean, delayed, lossy, down, restored = result['conditions']
    assert (clean['delay_ms'], delayed['delay_ms'], lossy['loss_pct'], down['link'],
            restored['link']) == (0.0, 10.0, 5.0, 'down', 'restored')
    for row in result['conditions']:
        # Every text came back encoded and was scored by the edge's SNARC (each stamp is
        # counted once): over a lossy link, and with the link cut.
        assert row['sent'] == 16 and row['latent_back'] == row['sent'], row
        assert row['salience_back'] == row['sent'], row
    assert lossy['link_dropped'] > 0 and down['link_kbit_per_s'] == 0.0
    # 10 ms each way: a text and its latent cross twice, so none comes back sooner than 20 ms
    assert delayed['latent_min_ms'] >= 20.0, delayed

    def count(row, key):
        return int(row['edge_encoder'].get(key, 0))
    # Who answered: the assist host while the link is up, the edge itself while it is cut,
    # and the assist host again once it is back.
    assert count(clean, 'remote_answered') >= clean['sent'] // 2, clean
    # (warm-up texts count too: at least every measured text)
    assert count(down, 'local_fallbacks') - count(lossy, 'local_fallbacks') >= down['sent']
    assert count(restored, 'remote_answered') > count(down, 'remote_answered'), restored
