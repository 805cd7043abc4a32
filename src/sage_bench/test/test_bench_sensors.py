"""`sage bench sensors` runs the profile's sensor nodes as `sage launch` does and measures them.

Only a short window: the figures themselves come from the 60 s benchmark (see the sensors
README); this checks that the nodes run with the profile's settings and the benchmark's rates
and that every stream is measured (rates are not asserted: the machine is shared).
"""
import os

import numpy as np
import soundfile

from sage_bench.sensors import bench_overrides, run_bench
from sage_bringup.profile import load_profile


def test_the_overrides_are_valid_profile_parameters(tmp_path):
    wav = tmp_path / 'a.wav'
    soundfile.write(wav, np.zeros(1600, np.float32), 16000)
    sets = bench_overrides(640, 480, 30.0, 16000, 512, 200.0, str(wav), with_graph=True)
    prof = load_profile('nano', sets)
    assert prof.node('camera').parameters['fps'] == 30.0
    assert prof.node('microphone').parameters['backend'] == 'file'
    assert prof.node('imu').parameters['rate'] == 200.0
    assert {prof.node('orchestrator').parameters[f'state.{s}.camera_fps']
            for s in ('wake', 'focus', 'rest', 'dream', 'crisis')} == {30.0}


def test_a_short_run_measures_all_three_streams(ros_domain, monkeypatch):
    for key in ('FASTDDS_DEFAULT_PROFILES_FILE', 'ROS_AUTOMATIC_DISCOVERY_RANGE'):
        monkeypatch.setenv(key, os.environ.get(key, ''))    # restored after the test
    result = run_bench(seconds=2.0, warmup_s=1.0, domain_id=ros_domain)
    assert result['nodes'] == ['camera', 'microphone', 'imu']
    # one process per node even where the profile composes them (nano): CPU and RSS per node
    assert result['restarts'] == {'camera': 0, 'microphone': 0, 'imu': 0}
    priorities = {n: load_profile('nano').node(n).parameters['capture_priority']
                  for n in result['nodes']}
    for name, stream in result['streams'].items():
        assert stream['messages'] > 0, name
        assert stream['non_monotonic'] == 0, name
        scheduling = stream['node_scheduling']
        assert scheduling == f'fifo:{priorities[name]}' or scheduling.startswith('normal ('), \
            scheduling
        assert stream['cpu_percent'] is not None and stream['rss_mb'] > 10
    assert result['streams']['camera']['requested_hz'] == 30.0
    assert result['streams']['microphone']['requested_hz'] == 31.25
    assert result['streams']['imu']['requested_hz'] == 200.0
    assert result['settings']['microphone']['path'].endswith('scene.wav')
    # the audio stamp is the first sample, so a frame is never received before it is complete
    assert result['streams']['microphone']['latency_ms']['p50'] >= 32.0
