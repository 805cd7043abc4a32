"""MemoryCore: pairing, storage policy, context buffer, fidelity (pure, no database)."""
from __future__ import annotations

import json
import itertools

import numpy as np

from sage_common.records import LatentRecord, SalienceRecord
from sage_memory.policy import MemoryCore, PolicyConfig
from sage_memory.store.models import record_to_row


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def sal(seq: int, modality: str = 'vision', salience: float = 0.9, attend: bool = True
        ) -> SalienceRecord:
    return SalienceRecord(stamp=10.0 + seq, modality=modality, input_seq=seq, surprise=0.1,
                          novelty=0.2, arousal=0.3, reward=0.4, conflict=0.5,
                          salience=salience, threshold=0.5, attend=attend)


def lat(seq: int, modality: str = 'vision') -> LatentRecord:
    return LatentRecord(stamp=10.0 + seq, modality=modality, input_seq=seq,
                        codes=np.full((3, 3), seq, np.uint16), codebook_size=512,
                        embedding=np.full(8, seq, np.float32), features={'motion': 0.5},
                        recon_error=0.01, preview_format='jpeg', preview=b'\xff\xd8' + bytes(8),
                        text='')


def core(**kw) -> tuple[MemoryCore, FakeClock]:
    clock = FakeClock()
    ids = (f'u{i:04d}' for i in itertools.count())
    cfg = PolicyConfig(device_id='dev', session='s', **kw)
    return MemoryCore(cfg, clock, lambda: next(ids)), clock


def test_salience_and_latent_pair_in_either_order():
    c, _ = core(context_before=0, context_after=0)
    assert c.on_latent(lat(1)) == []
    first = c.on_salience(sal(1))
    assert c.on_salience(sal(2)) == []
    second = c.on_latent(lat(2))
    assert [r.input_seq for r in first + second] == [1, 2]
    for r in first + second:
        assert r.kind == 'experience'
        assert r.embedding is not None and r.embedding[0] == r.input_seq
        assert r.preview.startswith(b'\xff\xd8')
        assert r.device_id == 'dev' and r.session == 's'


def test_imu_salience_is_stored_without_latent():
    c, _ = core(context_before=0, context_after=0)
    out = c.on_salience(sal(7, modality='imu', salience=0.8))
    assert len(out) == 1
    rec = out[0]
    assert rec.modality == 'imu' and rec.embedding is None and rec.codes is None
    assert (rec.surprise, rec.conflict, rec.salience) == (0.1, 0.5, 0.8)


def test_salience_without_latent_is_stored_after_timeout():
    c, clock = core(context_before=0, context_after=0, pair_timeout_s=1.0)
    assert c.on_salience(sal(3)) == []
    clock.t += 0.5
    assert c.expire() == []
    clock.t += 0.6
    out = c.expire()
    assert [r.input_seq for r in out] == [3]
    assert out[0].embedding is None
    assert c.counters['unpaired_salience'] == 1
    # A latent arriving afterwards no longer pairs and is dropped with the buffer.
    assert c.on_latent(lat(3)) == []


def test_context_inputs_around_a_salient_one_are_kept():
    c, _ = core(context_before=2, context_after=1)
    out = []
    for seq in range(1, 8):
        c.on_latent(lat(seq))
        out += c.on_salience(sal(seq, salience=0.9 if seq == 4 else 0.1, attend=seq == 4))
    by_seq = {r.input_seq: r for r in out}
    assert sorted(by_seq) == [2, 3, 4, 5]
    salient = by_seq[4]
    assert salient.kind == 'experience'
    for seq in (2, 3, 5):
        assert by_seq[seq].kind == 'context'
        assert by_seq[seq].context_of == salient.uuid
        assert by_seq[seq].codes is None  # context rows are summaries


def test_only_the_most_salient_are_kept_verbatim():
    c, _ = core(context_before=0, context_after=0, full_fidelity_top_fraction=0.25,
                fidelity_window=100)
    rng = np.random.default_rng(0)
    levels = rng.uniform(0.5, 1.0, 400)
    out = []
    for seq, s in enumerate(levels):
        c.on_latent(lat(seq))
        out += c.on_salience(sal(seq, salience=float(s)))
    late = out[100:]
    full = [r for r in late if r.fidelity == 'full']
    summary = [r for r in late if r.fidelity == 'summary']
    assert 0.15 < len(full) / len(late) < 0.35
    assert min(r.salience for r in full) > np.median([r.salience for r in summary])
    assert all(r.codes is not None and 'encoder' in r.extra for r in full)
    assert all(r.codes is None and r.embedding is not None for r in summary)


def test_policy_modes_and_metabolic_states_gate_storage():
    c, _ = core(context_before=0, context_after=0, states=frozenset({'WAKE', 'FOCUS'}))
    assert len(c.on_salience(sal(1, 'imu', attend=True))) == 1
    assert c.on_salience(sal(2, 'imu', attend=False)) == []
    c.metabolic_state = 'REST'
    assert c.on_salience(sal(3, 'imu', attend=True)) == []
    c.metabolic_state = 'FOCUS'
    stored = c.on_salience(sal(4, 'imu', attend=True))
    assert stored[0].metabolic_state == 'FOCUS'

    c, _ = core(context_before=0, context_after=0, mode='salience', min_salience=0.6)
    assert c.on_salience(sal(1, 'imu', salience=0.5, attend=True)) == []
    assert len(c.on_salience(sal(2, 'imu', salience=0.7, attend=False))) == 1

    c, _ = core(context_before=0, context_after=0, mode='all',
                modalities=frozenset({'imu'}))
    assert len(c.on_salience(sal(1, 'imu', salience=0.0, attend=False))) == 1
    assert c.on_salience(sal(2, 'audio', salience=1.0, attend=True)) == []

    c, _ = core(mode='off')
    assert c.on_salience(sal(1, 'imu')) == []


def test_pair_buffers_are_bounded():
    c, _ = core(context_before=0, context_after=0, pair_buffer=4)
    for seq in range(10):
        assert c.on_latent(lat(seq)) == []
    # Only the 4 newest latents are still waiting: old salience pairs with nothing.
    assert c.counters['unpaired_latent'] == 6
    out = []
    for seq in range(20, 30):
        out += c.on_salience(sal(seq))
    # Saliences pushed out of the full buffer are decided without a latent.
    assert [r.input_seq for r in out] == list(range(20, 26))
    assert all(r.embedding is None for r in out)


def test_state_round_trips_through_restore():
    c, _ = core(context_before=0, context_after=0)
    for seq in range(5):
        c.on_salience(sal(seq, 'imu', salience=0.5 + seq / 10))
    doc = c.state()
    c2, _ = core()
    c2.restore(doc)
    assert c2.state()['recent'] == doc['recent']
    assert c2.counters['stored'] == 5
    c2.restore({'recent': 'garbage', 'counters': [1]})  # malformed parts are ignored
    assert c2.counters['stored'] == 5


def test_feature_floats_are_stored_to_the_digits_asked_in_the_fewest_characters():

    rng = np.random.default_rng(0)
    values = {f'band_{i:02d}': float(np.float32(v)) for i, v in
              enumerate(rng.normal(-35.0, 5.0, 16))}  # audio bands, float32 as the encoder
    latent = LatentRecord(**{**lat(1, 'audio').__dict__, 'features': values,
                             'recon_error': float(np.float32(0.0146229891))})
    wide = json.dumps({'features': values}, separators=(',', ':'))
    sizes = {}
    for digits in (9, 4):
        c, _ = core(context_before=0, context_after=0, feature_digits=digits)
        rec = c.on_latent(latent) + c.on_salience(sal(1, modality='audio'))
        extra = record_to_row(rec[0])['extra']
        back = json.loads(extra)
        assert back['features'].keys() == values.keys()
        sizes[digits] = len(extra)
        if digits == 9:  # nothing a float32 holds is lost ...
            assert all(np.float32(back['features'][k]) == np.float32(v)
                       for k, v in values.items())
            assert np.float32(back['encoder']['recon_error']) == np.float32(latent.recon_error)
            # ... and the 17-digit float64 spelling of float32 values is gone.
            assert len(json.dumps(back['features'], separators=(',', ':'))) < 0.75 * len(wide)
        else:  # 4 significant digits: within 0.05 % of each value
            assert all(abs(back['features'][k] - v) <= 5e-4 * abs(v) for k, v in values.items())
            assert back['encoder']['recon_error'] == 0.01462
    assert sizes[9] < 520, sizes  # 503 here; 701 with float64 digits and ", " / ": "
    assert sizes[4] < 0.9 * sizes[9], sizes  # 445 against 503


def test_the_encoder_model_that_embedded_a_row_is_kept_and_published_with_it():
    from sage_memory.ros_convert import experience_to_msg  # lazy: message types, this test only
    latent = LatentRecord(**{**lat(1).__dict__, 'model_version': 'vision:3f2a9c1d'})
    c, _ = core(context_before=0, context_after=0)
    rec = (c.on_latent(latent) + c.on_salience(sal(1)))[0]
    assert rec.extra['model_version'] == 'vision:3f2a9c1d'
    assert experience_to_msg(rec).model_version == 'vision:3f2a9c1d'
    # IMU rows and latents without a version say nothing (SNARC takes its current model).
    imu = c.on_salience(sal(2, modality='imu'))[0]
    assert 'model_version' not in imu.extra and experience_to_msg(imu).model_version == ''
