"""Running robust statistics and the novelty memory index."""
import math

import numpy as np
import pytest

from sage_snarc.audio_scene import AudioBackground
from sage_snarc.novelty import MemoryIndex, NoveltyModel, RecentWindow, unit
from sage_snarc.robust import RobustStats, chord, saturate


def test_outlier_scores_high_and_a_typical_value_low():
    rng = np.random.default_rng(0)
    st = RobustStats(256, 16)
    for x in rng.normal(10.0, 1.0, 500):
        st.update(float(x))
    assert abs(st.z(10.5)) < 1.0
    assert st.z(20.0) > 6.0


def test_same_relative_change_scores_alike_on_quiet_and_busy_signals():
    rng = np.random.default_rng(1)
    quiet, busy = RobustStats(256, 16), RobustStats(256, 16)
    for x in rng.normal(0.0, 1.0, 500):
        quiet.update(float(x) * 0.01)
        busy.update(float(x) * 5.0)
    assert math.isclose(quiet.z(0.05), busy.z(25.0), rel_tol=0.05)


def test_frequent_events_do_not_become_the_background():
    rng = np.random.default_rng(2)
    st = RobustStats(256, 16)
    for i in range(2000):  # one value in eight is an event 50 spreads out
        st.update(50.0 if i % 8 == 0 else float(rng.normal()))
    assert st.z(50.0) > 20.0


def test_constant_signal_gives_finite_zero_scores():
    st = RobustStats(64, 8)
    for _ in range(100):
        st.update(3.0)
    assert st.z(3.0) == 0.0
    assert math.isfinite(st.z(3.1))
    st.update(float('nan'))
    assert st.count == 100


def test_saturate_and_chord_stay_in_range_for_any_input():
    for x in (-1.0, 0.0, 0.5, 1.0, 10.0, float('inf'), float('nan')):
        assert 0.0 <= saturate(x) <= 1.0
    assert saturate(1.0) == 1.0 - math.exp(-1.0)
    assert np.allclose(chord(np.array([1.0, 0.0, -1.0, 1.0000001])), [0.0, math.sqrt(2), 2.0,
                                                                    0.0])


def _clustered(n, dim, seed):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n // 50, dim))
    x = centers[rng.integers(0, len(centers), n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ivf_index_finds_seen_things_and_barely_overestimates_new_ones():
    data = _clustered(20000, 32, 3)
    index = MemoryIndex(32, exact_max=2000, nprobe=8, seed=0)
    for x in data:
        index.add(x)
    rng = np.random.default_rng(9)
    seen = data[rng.integers(0, len(data), 200)] + 0.1 * rng.normal(size=(200, 32))
    seen = (seen / np.linalg.norm(seen, axis=1, keepdims=True)).astype(np.float32)
    new = _clustered(200, 32, 4)  # other clusters: truly novel queries
    for queries, tolerance, share in ((seen, 1.0, 0.95), (new, 1.15, 0.95)):
        exact = np.array([float(chord(np.max(data @ q))) for q in queries])
        approx = np.array([index.nearest(q) for q in queries])
        assert np.all(approx >= exact - 1e-5)  # an index can only overestimate
        assert np.mean(approx <= tolerance * exact + 1e-5) >= share


def test_memory_index_checkpoint_answers_identically(monkeypatch):
    data = _clustered(9000, 16, 5)
    a = MemoryIndex(16, exact_max=1000)
    for x in data:
        a.add(x)
    state = a.state_dict()
    old = {k: v for k, v in state.items() if k not in ('centroids', 'assign')}
    queries = _clustered(50, 16, 6)
    # A checkpoint from before the quantiser was saved retrains it on the same prefix.
    b = MemoryIndex(16, exact_max=1000)
    b.load_state_dict(old)
    assert [a.nearest(q) for q in queries] == [b.nearest(q) for q in queries]
    # With it, the load trains nothing (k-means was most of SNARC's start) and answers alike.
    monkeypatch.setattr(MemoryIndex, '_build', lambda self, n: pytest.fail('k-means on load'))
    c = MemoryIndex(16, exact_max=1000)
    c.load_state_dict(state)
    assert [a.nearest(q) for q in queries] == [c.nearest(q) for q in queries]
    assert len(c) == len(b) == len(a) == 9000
    # ... and goes on as the original: later vectors land in the same lists.
    for x in _clustered(500, 16, 7):
        a.add(x)
        c.add(x)
    assert [a.nearest(q) for q in queries] == [c.nearest(q) for q in queries]


def test_recent_window_forgets_the_oldest_input():
    w = RecentWindow(3)
    vecs = [unit(np.eye(4, dtype=np.float32)[i]) for i in range(4)]
    for v in vecs:
        w.add(v)
    assert len(w) == 3
    assert np.min(w.distances(vecs[0])) > 1.0  # the first one is gone
    assert np.min(w.distances(vecs[3])) == 0.0
    assert unit(np.zeros(4)) is None and unit(np.array([np.inf, 1.0])) is None


def _nearest_z(scale: float, rel_floor: float) -> float:
    """z of a scene change after a calm scene whose embeddings are `scale` times as far
    apart (one encoder against another that spreads the same scene further)."""
    rng = np.random.default_rng(9)
    model = NoveltyModel(window=64, z_ref=5.0, stats_window=256, min_count=16, floor=0.005,
                         rel_floor=rel_floor)
    base = unit(rng.normal(0, 1, 64))
    for _ in range(400):
        model.observe(unit(base + scale * rng.normal(0, 0.0006, 64)))
    d = model.distance(unit(base + scale * rng.normal(0, 0.004, 64)))
    return model.stats.z(d)


def test_a_spread_floor_relative_to_the_median_scores_a_wider_model_alike():
    """With the absolute floor alone, a model that spreads the calm scene 12 % further gives
    the same change a 12 % higher z; the floor relative to the median keeps it."""
    absolute = _nearest_z(1.12, 0.0) / _nearest_z(1.0, 0.0)
    relative = _nearest_z(1.12, 2.0) / _nearest_z(1.0, 2.0)
    assert absolute > 1.1
    assert abs(relative - 1.0) < 0.02


def test_a_room_is_quieter_only_after_a_lasting_drop_below_its_background():
    bg = AudioBackground(120, drop_hops=2)
    assert not bg.quieter(-60.0, 4.0)                    # no background yet
    for _ in range(40):                                  # hop by hop, as SNARC calls it
        assert not bg.quieter(-38.0, 4.0)
        bg.update(-38.0, None)
    assert not bg.quieter(-45.0, 4.0)                    # one quiet hop: not yet
    assert bg.quieter(-46.0, 4.0)                        # two: the vent stopped
    assert not bg.quieter(-46.0, 0.0)                    # 0 dB: never
    assert not bg.quieter(-30.0, 4.0)                    # a sound breaks the run
    assert not bg.quieter(-41.0, 4.0) and not bg.quieter(-41.5, 4.0)  # within 4 dB
    bg.restart()
    assert not bg.quieter(-47.0, 4.0) and not bg.level.ready


def test_a_room_is_also_quieter_when_some_bands_drop_below_theirs():
    """A vent stops under a louder fan: the level stays within a dB, the high bands the
    vent filled drop 14 dB. Three bands held below their background for two hops is a change
    of room; one band dipping, or one hop, is not; the restart learns the spectrum afresh."""
    rng = np.random.default_rng(3)
    fan_vent = np.linspace(-30.0, -60.0, 16)
    fan_vent[10:] = -45.0
    bg = AudioBackground(120, drop_hops=2, band_hops=2)

    def hop(bands, band_db=6.0, count=3):
        level = -30.0 + rng.normal(0, 0.3)
        out = bg.quieter(level, 4.0, bands, band_db, count)
        bg.update(level, bands)
        return out

    assert not any(hop(fan_vent + rng.normal(0, 1.0, 16)) for _ in range(60))
    fan = fan_vent.copy()
    fan[10:] -= 14.0
    dip = fan_vent.copy()
    dip[12] -= 14.0
    assert not hop(dip) and not hop(dip)                 # one band: the room's own flicker
    assert not hop(fan)                                  # one hop: not yet
    assert not hop(fan, band_db=0.0)                     # 0 dB: never by the bands
    assert not hop(fan, count=7)                         # six bands dropped, seven asked for
    assert not hop(None)                                 # no bands from the encoder
    assert not hop(fan)
    saved = bg.state_dict()                              # a checkpoint in the middle of a hold
    bg = AudioBackground(120, drop_hops=2, band_hops=2)
    bg.load_state_dict(saved)
    assert hop(fan)                                      # two hops, six bands: it stopped
    bg.restart()
    # learning the new room: nothing stands out of it yet (the fan 20 dB up included)
    assert np.all(bg.foreground(fan + 20.0) == 0.0) and not bg.level.ready
    assert not any(hop(fan + rng.normal(0, 1.0, 16)) for _ in range(60))  # the new room
    assert np.allclose(bg.foreground(fan), 0.0, atol=2.0)


def test_a_room_is_louder_only_after_a_lasting_steady_rise_above_its_background():
    """A vent starts: the level holds 10 dB over the background with steady bands. Twelve
    such hops are a change of room; a shorter rise, bands that move (a voice), no bands or
    0 dB are not. The hops of a hold survive a checkpoint."""
    rng = np.random.default_rng(5)
    quiet = np.linspace(-40.0, -70.0, 16)
    bg = AudioBackground(240, rise_hops=12)

    def hop(level, bands, rise_db=6.0, flux_db=2.5):
        out = bg.louder(level, bands, rise_db, flux_db)
        bg.update(level, bands)
        return out

    def steady(rise):
        return quiet + rise + rng.normal(0, 0.5, 16)

    def loud(n, bands=steady, rise_db=6.0):
        """True when the rule fired on any of n hops 10 dB up; then one hop near the
        background ends the run."""
        fired = any(hop(-37.0, bands(10.0), rise_db) for _ in range(n))
        assert not hop(-46.0, steady(1.0))
        return fired

    assert not hop(-37.0, steady(10.0))                  # no background yet
    for _ in range(100):
        assert not hop(-47.0 + rng.normal(0, 0.3), steady(0.0))
    assert not loud(11)                                  # eleven hops: not yet
    assert not loud(14, lambda r: quiet + r + rng.normal(0, 6.0, 16))  # a voice's bands
    assert not loud(14, lambda r: None)                  # no bands from the encoder
    assert not loud(14, rise_db=0.0)                     # 0 dB: never
    assert not any(hop(-37.0, steady(10.0)) for _ in range(6))
    saved = bg.state_dict()                              # a checkpoint in the middle of a hold
    bg = AudioBackground(240, rise_hops=12)
    bg.load_state_dict(saved)
    assert not any(hop(-37.0, steady(10.0)) for _ in range(5))
    assert hop(-37.0, steady(10.0))                      # twelve steady hops: it started
    bg.restart()
    assert not bg.level.ready and not any(hop(-37.0, steady(10.0)) for _ in range(60))
