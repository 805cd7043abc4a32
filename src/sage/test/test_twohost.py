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
    result = run_bench(seconds=10.0, rate_hz=2.0, delays_ms='0,10', loss_pct='5',
                       edge_without=LIGHT_EDGE, domain_id=ros_domain)
    print({k: v for k, v in result.items() if k != 'logs_tail'})
    assert result['exit_codes'] == {'assist': 0, 'edge': 0}, result['logs_tail']
    clean, delayed, lossy = result['conditions']
    assert (clean['delay_ms'], delayed['delay_ms'], lossy['loss_pct']) == (0.0, 10.0, 5.0)
    assert lossy['link_dropped'] > 0  # the link really lost packets
    # 10 ms each way: a text and its latent cross twice, so none comes back sooner than 20 ms
    assert delayed['latent_min_ms'] >= 20.0, delayed
    for row in (clean, delayed, lossy):
        # Every text's latent came back from the other host: none lost, none twice (the
        # probe counts each stamp once), even with 5 % of the packets dropped.
        assert row['sent'] == 20 and row['latent_back'] == row['sent'], row
        # ... and the edge's SNARC scored each one.
        assert row['salience_back'] == row['sent'], row
        assert 0.0 < row['latent_round_trip_ms']['p50'] <= row['salience_round_trip_ms']['p95']
    # The latents can only have come over the link: the edge runs no language encoder.
    assert result['edge_nodes'] == ['snarc'] and result['assist_nodes'] == ['language_encoder']
