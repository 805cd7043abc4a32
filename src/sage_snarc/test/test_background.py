"""The learnt room (`sage_snarc.background`): what stands out of it and what becomes part of it."""
import numpy as np
import pytest

from sage_snarc.background import Background, bound_z, MIN_INPUTS

HOP_S = 0.256  # the audio encoder's hop
BANDS = 18  # peak, onset and 16 spectral bands


def _feed(bg: Background, rows: np.ndarray, t0: float = 0.0) -> list[np.ndarray | None]:
    """Excess of each row before it is folded in (as SNARC scores an input)."""
    out = []
    for i, x in enumerate(rows):
        out.append(bg.excess(x))
        bg.update(t0 + i * HOP_S, x)
    return out


def _stands_out(excess: list[np.ndarray | None]) -> np.ndarray:
    return np.array([e is not None and bool((e > 0.0).any()) for e in excess])


def test_the_room_alone_stands_out_at_about_the_false_alarm_rate():
    rng = np.random.default_rng(0)
    for p in (0.2, 0.02):
        bg = Background(10.0, p, np.full(BANDS, 0.1))
        rows = rng.normal(-50.0, 2.0, (6000, BANDS))
        rate = _stands_out(_feed(bg, rows))[200:].mean()
        # Normal tails beyond the room's top fifth: the rate is the chosen one's order,
        # never above it (the bound lies above the regular excursions, not the median).
        assert p / 20.0 < rate <= p


def test_a_clap_stands_out_where_the_room_is_quiet_and_warm_up_says_nothing():
    rng = np.random.default_rng(1)
    bg = Background(10.0, 1e-3, np.full(BANDS, 0.5))
    rows = rng.normal(-55.0, 1.5, (100, BANDS))
    ex = _feed(bg, rows)
    assert all(e is None for e in ex[:MIN_INPUTS])
    clap = rows[-1].copy()
    clap[5:9] += 25.0
    out = bg.excess(clap)
    assert out is not None and out[5:9].min() > 10.0 and out[9:].max() < 0.0


def test_a_clock_ticking_once_a_second_is_the_room_a_clap_over_it_is_not():
    rng = np.random.default_rng(2)
    bg = Background(10.0, 1e-3, np.full(BANDS, 0.5))
    rows = rng.normal(-55.0, 1.0, (400, BANDS))
    rows[::4, 8:14] += 15.0  # a tick in one hop of four, 15 dB above the room in its bands
    ex = _feed(bg, rows)
    assert _stands_out(ex)[100:].mean() < 0.01
    clap = rows[-1].copy()
    clap[4:12] += 35.0
    out = bg.excess(clap)
    assert out is not None and out[8:12].min() > 5.0


def test_a_wandering_air_handler_is_learnt_and_a_drop_is_followed():
    rng = np.random.default_rng(3)
    bg = Background(10.0, 1e-3, np.full(BANDS, 0.5))
    t = np.arange(1200) * HOP_S
    wander = 3.0 * np.sin(2 * np.pi * t / 30.0)  # a few dB over half a minute
    rows = rng.normal(-40.0, 1.0, (t.size, BANDS)) + wander[:, None]
    assert _stands_out(_feed(bg, rows))[100:].mean() < 0.01
    # The air handler stops: 15 dB quieter. Once the old room holds less than a fifth of the
    # window, a sound 12 dB above the new room stands out (measured from the old, it would not).
    quiet = rng.normal(-55.0, 1.0, (int(8.5 / HOP_S), BANDS))
    _feed(bg, quiet, t0=t[-1] + HOP_S)
    sound = quiet[-1].copy()
    sound[:6] += 12.0
    out = bg.excess(sound)
    assert out is not None and out[:6].min() > 0.0


def test_a_new_number_of_channels_starts_afresh_and_a_checkpoint_restores_the_room():
    rng = np.random.default_rng(4)
    bg = Background(10.0, 1e-3, np.full(BANDS, 0.5))
    _feed(bg, rng.normal(-50.0, 1.0, (60, BANDS)))
    copy = Background(10.0, 1e-3, np.full(BANDS, 0.5))
    copy.load_state_dict(bg.state_dict())
    x = rng.normal(-45.0, 1.0, BANDS)
    np.testing.assert_array_equal(copy.excess(x), bg.excess(x))
    bg.update(100.0, np.zeros(2))
    assert len(bg) == 1 and bg.excess(np.zeros(2)) is None
    with pytest.raises(ValueError):
        copy.load_state_dict({**bg.state_dict(), 'stamps': np.zeros(3)})


def test_the_bound_tightens_as_the_false_alarm_rate_grows():
    assert bound_z(1e-6, 18) > bound_z(1e-3, 18) > bound_z(1e-3, 1) > 0.0
