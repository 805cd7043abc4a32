"""Two hosts, one robot: text sent on the edge is encoded on the assist host and scored by the
edge's SNARC, over an emulated link between network namespaces (sage_bench.two_hosts), through the
real `sage bench twohost` (two `sage launch --role` graphs and a probe)."""
from __future__ import annotations

import os

import pytest

from sage_bench.twohost import OUTBOX_TRAFFIC, run_bench
from sage_bench.twohost_probe import next_stamp_ms
from sage_bench.two_hosts import available

pytestmark = pytest.mark.graph

# A light edge: the IMU, SNARC, memory and the standby language encoder; the assist host
# runs the language encoder, the shared PostgreSQL store and its memory node.
LIGHT_EDGE = 'camera,microphone,vision_encoder,audio_encoder,viz,orchestrator,foxglove,frames'


def test_text_crosses_to_the_assist_host_and_back_to_the_edge_snarc(ros_domain):
    why = available()
    if why:
        if os.environ.get('CI') in ('true', '1'):  # CI machines must run it
            pytest.fail(why)
        pytest.skip(why)
    result = run_bench(seconds=3.0, rate_hz=2.0, delays_ms='0,10', loss_pct='5', cut=True,
                       cut_s=10.0, shared_memory=True, edge_without=LIGHT_EDGE,
                       domain_id=ros_domain)
    print({k: v for k, v in result.items() if k != 'logs_tail'})
    assert result['exit_codes'] == {'assist': 0, 'edge': 0}, result['logs_tail']
    # The assist host has the only full-time language encoder; the edge's waits for it.
    assert result['edge_nodes'] == ['imu', 'language_encoder', 'snarc', 'memory']
    # ... and the memory node that sleeps and retrains on the shared store.
    assert result['assist_nodes'] == ['language_encoder', 'shared_memory']
    assert result['respawns'] == {'edge': 0, 'assist': 0}, result['logs_tail']
    clean, delayed, lossy, down, restored, killed = result['conditions']
    assert (clean['delay_ms'], delayed['delay_ms'], lossy['loss_pct'], down['link'],
            restored['link'], killed['shared_store']) == (0.0, 10.0, 5.0, 'down', 'restored',
                                                          'backend killed')
    assert killed['backends_killed'] >= 1  # the outbox's connection was killed (-9)
    for row in result['conditions']:
        # Every text came back encoded and was scored by the edge's SNARC (each stamp is
        # counted once): over a lossy link, and with the link cut.
        assert row['sent'] == 6 and row['latent_back'] == row['sent'], row
        assert row['salience_back'] == row['sent'], row
        # the edge scores its IMU without a gap whatever the link does
        assert row['salience_scored'].get('imu', 0) > 0 and row['salience_gaps']['imu'] == 0
    assert lossy['link_dropped'] > 0 and down['link_kbit_per_s'] == 0.0
    # What crossed, per topic (RTPS samples on the link mapped to writers by GID): the texts
    # and their latents, the shared store's traffic, and no sensor stream; every byte that
    # crossed is accounted for (IP fragments of the 1.9 kB latents included).
    topics = clean['link_by_topic']
    assert topics['/sage/text/in']['samples'] >= clean['sent'], topics
    assert topics['/sage/language/latent']['samples'] >= clean['sent'], topics
    assert topics[OUTBOX_TRAFFIC]['kbit_per_s'] > 0, topics
    assert not [t for t in topics if t.startswith(('/sage/camera', '/sage/audio', '/sage/imu'))]
    total = sum(v['kbit_per_s'] for v in topics.values())
    assert abs(total - clean['link_kbit_per_s']) <= 0.01 * clean['link_kbit_per_s'] + 0.5
    assert topics.get('other', {'kbit_per_s': 0.0})['kbit_per_s'] <= 0.01 * total, topics
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
    # Memory: the edge kept storing through the cut (a backlog built up), the outbox drained
    # it once the link was back, and at the end every experience stored on the edge is in the
    # shared PostgreSQL exactly once (5 % loss included).
    assert down['cut_s'] >= 10.0 and down['outbox_backlog_at_restore'] > 0, down
    assert down['outbox_drain_s'] is not None, down
    memory = result['memory']
    assert memory['edge_rows'] > 0 and memory['missing'] == 0, memory
    assert memory['shared_rows'] == memory['shared_distinct'] == memory['edge_rows'], memory


def test_texts_sent_back_to_back_get_distinct_stamps():
    # the probe tells texts apart by their millisecond stamp: two sent within one
    # millisecond (a probe catching up after a stall) must not be counted as one
    first = next_stamp_ms(100.0004, 0)
    second = next_stamp_ms(100.0004, first)
    later = next_stamp_ms(100.5, second)
    assert (first, second, later) == (100_000, 100_001, 100_500)
