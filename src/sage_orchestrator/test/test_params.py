"""Orchestrator parameters: defaults, cross-field rules and environment overrides."""
from __future__ import annotations

import pathlib
import re

import pytest
import yaml

from sage_common.errors import ParamError
from sage_common.params import flatten, resolve
from sage_orchestrator.metabolic import State
from sage_orchestrator.orchestrator_params import (PARAMS, build_config, env_name,
                                                   env_overrides, validate)


def test_defaults_are_valid_and_build_the_documented_config():
    values = resolve(PARAMS, {}, validate, 'orchestrator')
    cfg = build_config(values)
    assert [p.name for p in cfg.plugins] == ['vision_encoder', 'audio_encoder',
                                             'language_encoder']
    assert cfg.plugins[2].kind == 'event'
    assert cfg.effects.states[State.REST].camera_fps == 5.0
    assert cfg.effects.states[State.CRISIS].models == {'vision_encoder', 'audio_encoder'}
    assert cfg.effects.states[State.WAKE].models is None
    assert cfg.effects.pressure_pause[2] == {'language_encoder'}
    assert cfg.metabolic.dwell[State.FOCUS] == 3.0


@pytest.mark.parametrize('override, fragment', [
    ({'metabolic.focus_exit': 0.8}, 'focus_exit'),
    ({'pressure.red_psi': 5.0}, 'red_psi'),
    ({'atp.min_share': 0.5}, 'min_share'),
    ({'state.rest.models': 'vision_encoder,ghost'}, 'ghost'),
    ({'pressure.red.pause': 'ghost'}, 'ghost'),
    ({'pressure.yellow.set': 'memory:cache_mb=64'}, 'pressure.green.set'),
    ({'plugins': 'a:vision:stream,b:vision:event'}, 'share a modality'),
    ({'plugins': 'a:smell:stream'}, 'modality'),
    ({'pressure.yellow.set': 'camera=3'}, 'node:param'),
])
def test_inconsistent_values_are_rejected_with_the_parameter_named(override, fragment):
    with pytest.raises(ParamError, match=fragment):
        resolve(PARAMS, override, validate, 'orchestrator')


def test_environment_overrides_pressure_thresholds_and_state_dir():
    assert env_name('pressure.yellow_psi') == 'SAGE_PRESSURE_YELLOW_PSI'
    got = env_overrides({'SAGE_PRESSURE_YELLOW_PSI': '5', 'SAGE_PRESSURE_RED_PAUSE': '',
                         'SAGE_STATE_DIR': '/var/lib/sage', 'SAGE_TICK_HZ': '99'})
    assert got == {'pressure.yellow_psi': 5.0, 'pressure.red.pause': '',
                   'state_dir': '/var/lib/sage'}
    with pytest.raises(ParamError, match='SAGE_PRESSURE_HOLD_S'):
        env_overrides({'SAGE_PRESSURE_HOLD_S': 'soon'})


def test_the_profile_section_in_the_readme_is_valid():
    text = (pathlib.Path(__file__).parents[1] / 'README.md').read_text()
    block = re.findall(r'```yaml\n(.*?)```', text, re.S)[0]
    values = flatten(yaml.safe_load(block)['orchestrator']['ros__parameters'])
    assert resolve(PARAMS, values, validate) == resolve(PARAMS, {}, validate)
