"""The SNARC cost benchmark measures the latent and the IMU paths (figures, not speed limits)."""
from sage_bench.snarc import run_bench


def test_the_bench_times_latents_and_the_imu_samples_that_come_with_them():
    r = run_bench(0.5, memories=3000, modality='audio', rate_hz=10.0)
    assert r['memories'] == 3000 and r['inputs'] > 10
    assert r['imu_samples'] == 20 * r['inputs']  # 200 Hz beside a 10 Hz stream
    assert 0.0 < r['p50_ms'] <= r['p95_ms'] <= r['p99_ms'] <= r['max_ms']
    assert 0.0 < r['imu_p50_ms'] <= r['imu_p95_ms'] <= r['imu_max_ms']
    assert r['with_imu_p95_ms'] >= r['p95_ms']
    assert r['reconfigure_p50_ms'] > 0.0 and r['checkpoint_restore_p50_ms'] > 0.0
    assert r['reconfigure_over_restore'] == \
        r['reconfigure_p50_ms'] / r['checkpoint_restore_p50_ms']
