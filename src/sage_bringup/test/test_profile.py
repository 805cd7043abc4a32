import importlib

import pytest

from sage_bringup.profile import (load_profile, params_file_content, parse_set, profile_data,
                                  profile_path, ProfileError)
from sage_common.errors import ParamError
from sage_common.params import flatten

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
    params = content['/**/snarc']['ros__parameters']  # any namespace
    assert isinstance(params, dict) and params


def test_duplicate_keys_in_a_profile_are_refused(tmp_path):
    bad = tmp_path / 'dup.yaml'
    bad.write_text('launch:\n  nodes: {}\nsnarc:\n  ros__parameters:\n    weights: {a: 1}\n'
                   '    weights: {b: 2}\n')
    with pytest.raises(ProfileError, match="duplicate key 'weights' at line 6"):
        load_profile(str(bad))


@pytest.mark.parametrize('profile', ['nano', 'thor', 'workstation'])
def test_profile_files_spell_out_every_declared_parameter(profile):
    data = profile_data(profile_path(profile))
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


def test_roles_split_the_graph_between_two_hosts_and_open_dds_to_the_lan():
    edge = load_profile('nano', role='edge')
    assist = load_profile('workstation', role='assist')
    assert {n.name for n in assist.nodes} == {'language_encoder', 'shared_memory'}
    # The assist host's memory node: thor's memory parameters with its own changes, and names
    # that keep it off the edge's memory calls, model topic and sensor latents.
    shared = assist.node('shared_memory')
    thor_memory = load_profile('thor').node('memory').parameters
    assert shared.parameters['models.share'] and shared.parameters['policy.mode'] == 'off'
    assert shared.parameters['sleep.on_dream_s'] > 0
    assert shared.parameters['sleep.retrain.time_budget_s'] == \
        thor_memory['sleep.retrain.time_budget_s']
    remaps = dict(shared.remappings)
    for name in ('sage/memory/sleep', 'sage/models/live', 'sage/vision/latent',
                 'sage/memory/state'):
        assert remaps[name].startswith('sage/shared_memory/'), name
    assert 'shared_memory' not in {n.name for n in load_profile('workstation').nodes}
    assert EXPECTED_NODES <= {n.name for n in edge.nodes}
    assert edge.settings['multi_host'] and assist.settings['multi_host']
    # The edge's own language encoder only answers when the assist host does not.
    assert edge.node('language_encoder').parameters['remote_first.enabled'] is True
    assert assist.node('language_encoder').parameters['remote_first.enabled'] is False
    assert load_profile('nano').node('language_encoder').parameters['remote_first.enabled'] \
        is False  # one host: unchanged
    # The user's --set still wins over the role's.
    mine = load_profile('nano', ['language_encoder.remote_first.enabled=false'], role='edge')
    assert mine.node('language_encoder').parameters['remote_first.enabled'] is False
    # One robot, one graph: the assist host is on the edge's domain.
    assert assist.settings['domain_id'] == edge.settings['domain_id']
    with pytest.raises(ProfileError, match=r"no role 'cloud' \(launch.roles: edge, assist\)"):
        load_profile('nano', role='cloud')


def test_extends_merges_mappings_over_the_base_and_refuses_cycles(tmp_path):
    child = tmp_path / 'child.yaml'
    child.write_text('extends: nano\nlaunch:\n  domain_id: 9\ncamera:\n'
                     '  ros__parameters:\n    fps: 7.0\n')
    prof = load_profile(str(child))
    base = load_profile('nano')
    assert prof.settings['domain_id'] == 9 and prof.node('camera').parameters['fps'] == 7.0
    # everything not written comes from the base, node by node and key by key
    assert prof.node('camera').parameters['width'] == base.node('camera').parameters['width']
    assert [n.name for n in prof.nodes] == [n.name for n in base.nodes]
    a, b = tmp_path / 'a.yaml', tmp_path / 'b.yaml'
    a.write_text('extends: b.yaml\n')
    b.write_text('extends: a.yaml\n')
    with pytest.raises(ProfileError, match='makes a cycle'):
        load_profile(str(a))
