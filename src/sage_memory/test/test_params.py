"""Memory node parameters: defaults resolve, bad values are named."""
from __future__ import annotations

import pytest

from sage_common.errors import ParamError
from sage_common.params import resolve
from sage_memory.config import memory_config, policy_config
from sage_memory.memory_params import PARAMS, validate


def test_defaults_resolve_into_core_configs():
    values = resolve(PARAMS, {'device_id': 'nano-1', 'session': 's1'}, validate, 'memory')
    cfg = memory_config(values)
    assert cfg.store.database_url == '' and cfg.store.device_id == 'nano-1'
    assert cfg.store.retention.max_rows == 200_000
    pol = policy_config(values)
    assert pol.modalities == {'vision', 'audio', 'imu', 'language'}
    assert pol.session == 's1' and pol.mode == 'attend'


@pytest.mark.parametrize('override, message', [
    ({'policy.modalities': 'vision,smell'}, 'unknown smell'),
    ({'policy.states': 'WAKE,NAP'}, 'unknown NAP'),
    ({'database_url': 'mysql://x'}, 'unsupported scheme'),
    ({'policy.mode': 'sometimes'}, 'not one of'),
    ({'full_fidelity_top_fraction': 1.5}, 'above the maximum'),
    ({'language_encoder': 'no_colon'}, "expected 'module:Class'"),
])
def test_bad_values_are_rejected_with_the_parameter_named(override, message):
    with pytest.raises(ParamError, match=message):
        resolve(PARAMS, override, validate, 'memory')
