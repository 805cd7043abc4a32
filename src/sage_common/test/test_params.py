import math

import pytest

from sage_common.errors import ParamError
from sage_common.params import ParamSpec, check_value, flatten, resolve

SPECS = (
    ParamSpec('fps', 30.0, 'frame rate', min_value=0.1, max_value=120.0),
    ParamSpec('width', 640, 'width', min_value=16, max_value=4096),
    ParamSpec('backend', 'synthetic', 'source', choices=('synthetic', 'file')),
    ParamSpec('loop', True, 'loop the file'),
)


def test_defaults_fill_missing_values():
    assert resolve(SPECS, {}) == {'fps': 30.0, 'width': 640, 'backend': 'synthetic',
                                  'loop': True}


def test_values_are_coerced_to_the_spec_type():
    out = resolve(SPECS, {'fps': 15, 'width': '320', 'loop': 'false'})
    assert out['fps'] == 15.0 and isinstance(out['fps'], float)
    assert out['width'] == 320 and out['loop'] is False


@pytest.mark.parametrize('name,value,fragment', [
    ('fps', -1.0, 'below the minimum'),
    ('fps', 500, 'above the maximum'),
    ('fps', math.nan, 'not a finite number'),
    ('width', 3.5, 'cannot use'),
    ('backend', 'webcam', 'not one of'),
    ('loop', 'maybe', 'cannot use'),
])
def test_bad_values_name_the_parameter(name, value, fragment):
    problem = check_value({s.name: s for s in SPECS}[name], value)
    assert problem is not None and f"'{name}'" in problem and fragment in problem


def test_unknown_parameter_and_cross_field_rule_are_reported_together_with_node():
    with pytest.raises(ParamError, match=r"camera: unknown parameter 'fsp'"):
        resolve(SPECS, {'fsp': 3}, node='camera')

    def rule(values):
        return ['width must be even'] if values['width'] % 2 else []
    with pytest.raises(ParamError, match='width must be even'):
        resolve(SPECS, {'width': 33}, validator=rule)


def test_flatten_joins_nested_groups_with_dots():
    assert flatten({'weights': {'surprise': 0.3, 'novelty': 0.2}, 'rate': 5}) == {
        'weights.surprise': 0.3, 'weights.novelty': 0.2, 'rate': 5}
