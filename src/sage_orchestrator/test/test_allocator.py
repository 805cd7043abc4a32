"""ATP allocation: shares follow trust and salience, the minimum share holds, reallocation."""
from __future__ import annotations

import pytest

from sage_orchestrator.allocator import (AllocatorConfig, Claim, Ledger, allocate,
                                         apply_min_grant, shares)

CFG = AllocatorConfig(min_share=0.05, min_grant=1.0, salience_floor=0.1, focus_gain=2.0,
                      realloc_cap=1.0)


def test_shares_follow_trust():
    s = shares([Claim('a', 0.8, 0.5), Claim('b', 0.2, 0.5)], 0.0, 0.1)
    assert s == pytest.approx([0.8, 0.2])


def test_shares_follow_salience():
    s = shares([Claim('a', 0.5, 0.9), Claim('b', 0.5, 0.1)], 0.0, 0.1)
    assert s == pytest.approx([1.0 / 1.2, 0.2 / 1.2])


def test_shares_follow_the_documented_formula_with_a_minimum_share():
    claims = [Claim('a', 0.9, 0.7), Claim('b', 0.4, 0.2), Claim('c', 0.6, 0.0, gain=2.0)]
    w = [0.9 * 0.8, 0.4 * 0.3, 0.6 * 0.1 * 2.0]
    expected = [0.05 + 0.85 * x / sum(w) for x in w]
    assert shares(claims, 0.05, 0.1) == pytest.approx(expected)
    assert sum(shares(claims, 0.05, 0.1)) == pytest.approx(1.0)


def test_minimum_share_holds_for_a_distrusted_quiet_plugin():
    claims = [Claim('a', 1.0, 1.0), Claim('b', 1.0, 1.0), Claim('starved', 0.0, 0.0)]
    allocs = allocate(claims, 10.0, 0.0, 100.0, CFG)
    assert allocs[2].share == pytest.approx(0.05)
    assert allocs[2].atp == pytest.approx(0.5)
    assert allocs[0].atp == allocs[1].atp == pytest.approx(4.75)


def test_minimum_share_is_capped_so_shares_still_sum_to_one():
    s = shares([Claim('a', 1.0, 0.0), Claim('b', 0.0, 0.0)], 0.8, 0.1)
    assert s == pytest.approx([0.5, 0.5])


def test_allocation_is_deterministic():
    claims = [Claim(f'p{i}', 0.1 * i, 0.05 * i, hungry=i % 2 == 0) for i in range(10)]
    first = allocate(claims, 10.0, 3.0, 50.0, CFG)
    assert all(allocate(claims, 10.0, 3.0, 50.0, CFG) == first for _ in range(5))
    assert [a.name for a in first] == [c.name for c in claims]


def test_inactive_plugins_get_nothing_and_do_not_take_a_minimum_share():
    claims = [Claim('a', 0.5, 0.5), Claim('b', 0.5, 0.5, active=False)]
    allocs = allocate(claims, 10.0, 0.0, 100.0, CFG)
    assert allocs[1].atp == 0.0 and allocs[1].share == 0.0
    assert allocs[0].atp == pytest.approx(10.0)


def test_non_finite_trust_or_salience_count_as_zero():
    s = shares([Claim('a', float('nan'), 0.5), Claim('b', 0.5, float('inf'))], 0.1, 0.1)
    assert s[0] == pytest.approx(0.1) and sum(s) == pytest.approx(1.0)


def test_unused_atp_after_an_early_halt_is_reallocated_to_hungry_plugins():
    ledger = Ledger(['early', 'hungry', 'other'])
    first = allocate([Claim('early', 0.5, 0.5), Claim('hungry', 0.5, 0.5),
                      Claim('other', 0.5, 0.5)], 9.0, 0.0, 100.0, CFG)
    ledger.open(first)
    ledger.record('early', 1.0, 'converged')   # halted early: 2 of 3 unused
    ledger.record('hungry', 3.0, 'budget')     # ran out: wants more
    ledger.record('other', 3.0, 'max_iterations')
    period = {s.name: s for s in ledger.close()}
    assert period['early'].returned == pytest.approx(2.0)
    assert period['hungry'].returned == 0.0 and period['hungry'].hungry
    pool = sum(s.returned for s in period.values())
    claims = [Claim('early', 0.5, 0.5), Claim('hungry', 0.5, 0.5, hungry=True),
              Claim('other', 0.5, 0.5)]
    second = allocate(claims, 9.0, pool, 100.0, CFG)
    assert second[1].extra == pytest.approx(2.0) and second[1].atp == pytest.approx(5.0)
    assert second[0].extra == 0.0 and second[2].extra == 0.0


def test_a_silent_plugin_returns_nothing():
    ledger = Ledger(['a'])
    ledger.open(allocate([Claim('a', 1.0, 1.0)], 5.0, 0.0, 10.0, CFG))
    assert ledger.close()[0].returned == 0.0


def test_returned_atp_without_hungry_plugins_is_not_handed_out():
    claims = [Claim('a', 0.5, 0.5), Claim('b', 0.5, 0.5)]
    allocs = allocate(claims, 10.0, 6.0, 100.0, CFG)
    assert sum(a.atp for a in allocs) == pytest.approx(10.0)


def test_reallocation_is_capped_by_the_reservoir_and_realloc_cap():
    claims = [Claim('a', 0.5, 0.5, hungry=True), Claim('b', 0.5, 0.5, hungry=True)]
    assert sum(a.extra for a in allocate(claims, 10.0, 50.0, 13.0, CFG)) == pytest.approx(3.0)
    assert sum(a.extra for a in allocate(claims, 10.0, 50.0, 1e9, CFG)) == pytest.approx(10.0)
    assert sum(a.atp for a in allocate(claims, 10.0, 5.0, 4.0, CFG)) == pytest.approx(4.0)


def test_a_minimum_share_too_small_for_one_step_accrues_until_it_is():
    claims = [Claim('a', 1.0, 1.0), Claim('b', 1.0, 1.0), Claim('starved', 0.0, 0.0),
              Claim('off', 1.0, 1.0, active=False)]
    credit: dict[str, float] = {}
    grants = []
    for _ in range(6):  # 0.05 * 8 = 0.4 ATP a tick: granted 1.2 every third tick
        out = apply_min_grant(allocate(claims, 8.0, 0.0, 100.0, CFG), credit, 1.0)
        grants.append(round(out[2].atp, 6))
        assert out[0].atp == pytest.approx(0.475 * 8.0) and out[3].atp == 0.0
    assert grants == [0.0, 0.0, 1.2, 0.0, 0.0, 1.2]
    assert sum(grants) == pytest.approx(6 * 0.4)
