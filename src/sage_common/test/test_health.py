from sage_common.health import Health, Level


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_rate_counts_events_in_the_window_only():
    clock = FakeClock()
    h = Health(window_s=5.0, clock=clock)
    for _ in range(10):
        h.count('frames')
    assert h.rate('frames') == 2.0
    clock.t += 6.0
    assert h.rate('frames') == 0.0
    assert h.counters['frames'] == 10


def test_problem_sets_level_until_it_ages_out():
    clock = FakeClock()
    h = Health(hold_s=10.0, clock=clock)
    h.problem(Level.ERROR, 'bad image encoding yuv9')
    snap = h.snapshot()
    assert snap.level == Level.ERROR and 'yuv9' in snap.message
    assert snap.values['errors'] == '1'
    clock.t += 11.0
    assert h.snapshot().level == Level.OK


def test_latency_percentiles_are_reported():
    h = Health()
    for ms in range(1, 101):
        h.latency('encode', float(ms))
    values = h.snapshot().values
    assert abs(float(values['encode_p50_ms']) - 50.5) < 1e-6
    assert float(values['encode_p95_ms']) > 94.0


def test_condition_holds_its_level_until_cleared():
    clock = FakeClock()
    h = Health(hold_s=10.0, clock=clock)
    h.condition('provider_fallback', Level.WARN, 'asked CUDA, live CPU')
    clock.t += 60.0
    snap = h.snapshot()
    assert snap.level == Level.WARN and snap.message == 'asked CUDA, live CPU'
    h.problem(Level.ERROR, 'bad frame')
    assert h.snapshot().level == Level.ERROR
    clock.t += 11.0
    h.condition('provider_fallback', Level.WARN, '')
    assert h.snapshot().level == Level.OK
