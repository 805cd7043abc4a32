"""The one event schedule: order, looping, labels, validation, CLI."""
import json

from sage_common.params import resolve
import pytest

from sage_sensors import camera_params, imu_params, microphone_params
from sage_sensors.timeline import PHRASE, Timeline, main, timeline_from_params


def test_default_schedule_matches_the_issue():
    tl = Timeline()
    got = [(o.event.name, o.event.modality, o.stamp) for o in tl.occurrences(0.0, 20.0)]
    assert got == [('object_appears', 'vision', 6.0), ('clap', 'audio', 9.0),
                   ('phrase', 'audio', 12.0), ('shake', 'imu', 15.0)]
    assert tl.event('phrase').label == PHRASE


def test_occurrences_loop_every_period_and_respect_the_origin():
    tl = Timeline(origin_s=1000.0)
    occ = tl.occurrences(1000.0, 1040.0)
    assert [o.stamp for o in occ if o.event.name == 'clap'] == [1009.0, 1029.0]
    assert len(occ) == 8
    assert tl.occurrences(1009.5, 1012.0) == []


def test_active_reports_time_since_event_start_only_inside_the_event():
    tl = Timeline()
    assert tl.active('object_appears', 206.5) == pytest.approx(0.5)
    assert tl.active('object_appears', 210.5) is None     # 4 s duration is over
    assert tl.active('shake', 15.0 + 1.4) == pytest.approx(1.4)
    assert tl.active('shake', 14.9) is None


def test_event_outside_the_period_names_its_parameter():
    problems = timeline_from_params({'scene.period_s': 10.0}).problems()
    assert any("'scene.phrase_s'" in p for p in problems)
    assert any("'scene.shake_s'" in p for p in problems)
    assert not any('clap' in p for p in problems)
    assert Timeline().problems() == []


@pytest.mark.parametrize('module', [camera_params, microphone_params, imu_params])
def test_every_sensor_shares_the_timeline_parameters(module):
    names = {s.name for s in module.PARAMS}
    assert {'scene.period_s', 'scene.object_s', 'scene.clap_s', 'scene.phrase_s',
            'scene.shake_s', 'scene.origin_s'} <= names
    with pytest.raises(Exception, match='scene.shake_s'):
        resolve(module.PARAMS, {'scene.period_s': 14.0, 'scene.shake_s': 13.5},
                module.validate)


def test_cli_prints_labelled_events_as_json(capsys):
    assert main(['--start', '20', '--end', '40']) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o['stamp'] for o in out['occurrences']] == [26.0, 29.0, 32.0, 35.0]
    assert out['timeline']['period_s'] == 20.0
