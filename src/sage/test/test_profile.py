import pytest

from sage.profile import ProfileError, load_profile, params_file_content, parse_set
from sage_common.errors import ParamError

EXPECTED_NODES = {'camera', 'microphone', 'imu', 'vision_encoder', 'audio_encoder',
                  'language_encoder', 'snarc', 'orchestrator', 'memory'}


@pytest.mark.parametrize('profile', ['nano', 'thor'])
def test_profiles_hold_every_node_of_the_graph_with_valid_parameters(profile):
    prof = load_profile(profile)
    names = {n.name for n in prof.nodes}
    assert EXPECTED_NODES <= names
    for node in prof.nodes:
        assert node.parameters, f'{node.name} has no parameters'


def test_set_overrides_a_value_and_keeps_its_type():
    prof = load_profile('nano', ['camera.fps=12', 'camera.backend=synthetic'])
    cam = prof.node('camera')
    assert cam.parameters['fps'] == 12.0 and isinstance(cam.parameters['fps'], float)


@pytest.mark.parametrize('expr,fragment', [
    ('camera.fps=-5', "'fps'"),
    ('camera.fps=fast', "'fps'"),
    ('camera.no_such_param=1', "unknown parameter 'no_such_param'"),
    ('nonode.fps=1', "no node 'nonode'"),
    ('camerafps=1', 'expected node.param=value'),
])
def test_bad_set_fails_with_a_message_naming_the_problem(expr, fragment):
    with pytest.raises((ProfileError, ParamError), match=fragment.replace('.', r'\.')):
        load_profile('nano', [expr])


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ProfileError, match=r"unknown profile 'pico'.*nano.*thor"):
        load_profile('pico')


def test_parse_set_reads_yaml_values_and_dotted_parameter_names():
    assert parse_set('snarc.weights.surprise=0.5') == ('snarc', 'weights.surprise', 0.5)
    assert parse_set('camera.loop=false') == ('camera', 'loop', False)


def test_params_file_nests_dotted_names_under_the_node():
    prof = load_profile('nano')
    content = params_file_content(prof.node('snarc'))
    params = content['snarc']['ros__parameters']
    assert isinstance(params, dict) and params


def test_duplicate_keys_in_a_profile_are_refused(tmp_path):
    bad = tmp_path / 'dup.yaml'
    bad.write_text('launch:\n  nodes: {}\nsnarc:\n  ros__parameters:\n    weights: {a: 1}\n'
                   '    weights: {b: 2}\n')
    with pytest.raises(ProfileError, match="duplicate key 'weights' at line 6"):
        load_profile(str(bad))


@pytest.mark.parametrize('profile', ['nano', 'thor'])
def test_profile_files_spell_out_every_declared_parameter(profile):
    import importlib

    from sage.profile import profile_path, read_yaml
    from sage_common.params import flatten
    data = read_yaml(profile_path(profile))
    for name, entry in data['launch']['nodes'].items():
        declared = {s.name for s in importlib.import_module(entry['params']).PARAMS}
        written = set(flatten(data[name]['ros__parameters']))
        assert written == declared, (name, sorted(declared ^ written))


def test_without_drops_named_nodes_and_refuses_unknown_ones():
    prof = load_profile('nano').without(['camera', 'imu'])
    assert {'camera', 'imu'}.isdisjoint(n.name for n in prof.nodes)
    assert 'microphone' in {n.name for n in prof.nodes}
    with pytest.raises(ProfileError, match='no node cam'):
        load_profile('nano').without(['cam'])
