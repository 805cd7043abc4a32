"""Remote effects: settings syntax, composition of state and pressure, reconciliation."""
from __future__ import annotations

import pytest

from sage_orchestrator.effects import (EffectsConfig, ParamSync, StateEffects, combine,
                                       desired_params, parse_settings, parse_target,
                                       parse_value)
from sage_orchestrator.errors import OrchestratorError
from sage_orchestrator.metabolic import State


def test_settings_parse_with_typed_values():
    got = parse_settings('camera:fps=10.0, memory:cache_mb=64,language_encoder:active=false,'
                         'camera:mode=low')
    assert got == {('camera', 'fps'): 10.0, ('memory', 'cache_mb'): 64,
                   ('language_encoder', 'active'): False, ('camera', 'mode'): 'low'}
    assert isinstance(got[('camera', 'fps')], float)
    assert isinstance(got[('memory', 'cache_mb')], int)
    assert parse_value('1e-3') == 0.001 and parse_value('TRUE') is True
    assert parse_settings('') == {} and parse_target('') is None
    assert parse_target('/camera:fps') == ('camera', 'fps')


@pytest.mark.parametrize('bad', ['camera', 'camera:fps', ':fps=1', 'camera:=1', 'a:b:c=1'])
def test_malformed_settings_are_rejected(bad):
    with pytest.raises(OrchestratorError):
        parse_settings(bad)


def test_pressure_caps_take_the_lower_number_and_false():
    assert combine(15.0, 10) == 10.0 and isinstance(combine(15.0, 10), float)
    assert combine(2.0, 10.0) == 2.0
    assert combine(True, False) is False and combine(False, True) is False
    assert combine('high', 'low') == 'low' and combine(None, 3) == 3


def config() -> EffectsConfig:
    states = {s: StateEffects(camera_fps=15.0) for s in State}
    states[State.REST] = StateEffects(camera_fps=5.0, threshold_offset=0.05)
    return EffectsConfig(
        states=states, camera_fps=('camera', 'fps'), threshold=('snarc', 'threshold_offset'),
        model_active_param='active',
        pressure_set=({('memory', 'cache_mb'): 256}, {('camera', 'fps'): 10.0,
                                                      ('memory', 'cache_mb'): 64},
                      {('camera', 'fps'): 5.0, ('memory', 'cache_mb'): 16}))


def test_desired_parameters_compose_state_and_pressure():
    cfg = config()
    active = {'vision_encoder': True, 'language_encoder': False}
    green = desired_params(State.WAKE, 0, active, cfg)
    assert green == {('camera', 'fps'): 15.0, ('snarc', 'threshold_offset'): 0.0,
                     ('memory', 'cache_mb'): 256, ('vision_encoder', 'active'): True,
                     ('language_encoder', 'active'): False}
    yellow = desired_params(State.WAKE, 1, active, cfg)
    assert yellow[('camera', 'fps')] == 10.0 and yellow[('memory', 'cache_mb')] == 64
    # REST's own rate is already under the yellow cap.
    assert desired_params(State.REST, 1, active, cfg)[('camera', 'fps')] == 5.0
    red = desired_params(State.WAKE, 2, active, cfg)
    assert red[('camera', 'fps')] == 5.0 and red[('memory', 'cache_mb')] == 16


def test_param_sync_sends_changes_once_and_retries_failures():
    sync = ParamSync(retry_s=5.0, reassert_s=30.0)
    sync.set_desired({('camera', 'fps'): 15.0, ('snarc', 'threshold_offset'): 0.0})
    sent = sync.due(0.0)
    assert sent == {'camera': {'fps': 15.0}, 'snarc': {'threshold_offset': 0.0}}
    assert sync.due(0.1) == {}  # in flight
    sync.result('camera', sent['camera'], {'fps': (True, '')}, 0.2)
    sync.result('snarc', sent['snarc'], {'threshold_offset': (False, 'parameter not declared')},
                0.2)
    assert sync.value(('camera', 'fps')) == 15.0
    assert sync.failures == {('snarc', 'threshold_offset'): 'parameter not declared'}
    assert sync.due(1.0) == {}
    assert sync.due(5.3) == {'snarc': {'threshold_offset': 0.0}}
    sync.set_desired({('camera', 'fps'): 5.0})
    assert sync.due(6.0) == {'camera': {'fps': 5.0}}


def test_param_sync_resends_after_reassert_and_after_a_lost_reply():
    sync = ParamSync(retry_s=1.0, reassert_s=30.0)
    sync.set_desired({('camera', 'fps'): 15.0})
    sync.result('camera', sync.due(0.0)['camera'], {'fps': (True, '')}, 0.0)
    assert sync.due(29.0) == {} and sync.due(30.0) == {'camera': {'fps': 15.0}}
    assert sync.due(31.0) == {}            # in flight, no reply yet
    assert sync.due(32.0) == {'camera': {'fps': 15.0}}  # the reply never came
    sync.unreachable('camera', 'service not available', 32.5)
    assert sync.due(33.0) == {} and sync.due(33.5) == {'camera': {'fps': 15.0}}


def test_a_late_reply_is_credited_to_its_own_request_only():
    sync = ParamSync(retry_s=0.3, reassert_s=30.0)
    sync.set_desired({('camera', 'fps'): 30.0})
    first = sync.due(0.0)['camera']
    sync.set_desired({('camera', 'fps'): 15.0})
    assert sync.due(0.7) == {'camera': {'fps': 15.0}}  # the first never answered: given up
    second = sync._pending['camera'][0]
    sync.result('camera', first, {'fps': (True, '')}, 0.8)     # ... until now, late
    assert sync.value(('camera', 'fps')) == 30.0       # what the camera really has now
    assert sync.due(0.85) == {}                         # the 15 Hz request is still in flight
    sync.unreachable('camera', 'timed out', 0.9, first)  # a stale failure changes nothing
    assert sync.due(0.95) == {}
    sync.result('camera', second, {'fps': (True, '')}, 1.0)
    assert sync.value(('camera', 'fps')) == 15.0 and sync.due(1.1) == {}


def test_a_lost_request_is_sent_again_when_the_late_reply_is_for_an_older_one():
    sync = ParamSync(retry_s=0.3, reassert_s=30.0)
    sync.set_desired({('camera', 'fps'): 30.0})
    first = sync.due(0.0)['camera']
    sync.set_desired({('camera', 'fps'): 15.0})
    sync.due(0.7)                                      # 15 Hz sent; that request is lost
    sync.result('camera', first, {'fps': (True, '')}, 0.8)
    assert sync.due(1.3) == {'camera': {'fps': 15.0}}  # not taken for applied: sent again


def test_type_changes_count_as_changes():
    sync = ParamSync()
    sync.set_desired({('n', 'p'): 1})
    sync.result('n', sync.due(0.0)['n'], {'p': (True, '')}, 0.0)
    sync.set_desired({('n', 'p'): 1.0})
    assert sync.due(0.1) == {'n': {'p': 1.0}}


def test_a_per_state_threshold_target_gets_every_states_offset():
    cfg = config()
    cfg = EffectsConfig(states=cfg.states, camera_fps=None,
                        threshold=('snarc', 'threshold.offset.{state}'))
    got = desired_params(State.WAKE, 0, {}, cfg)
    assert got == {('snarc', f'threshold.offset.{s}'): (0.05 if s == 'rest' else 0.0)
                   for s in ('wake', 'focus', 'rest', 'dream', 'crisis')}
    assert desired_params(State.REST, 2, {}, cfg) == got  # the same whatever the state
