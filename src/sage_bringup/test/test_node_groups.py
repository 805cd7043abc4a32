"""launch.compose_threads: how many executor threads each composed process spins, written into
the group's spec for sage_bringup.compose, and refused when it is not a whole number >= 0."""
from __future__ import annotations

import pytest
import yaml

from sage_bringup.node_groups import compose_groups, NodeGroup, write_group_spec
from sage_bringup.paths import config_dir
from sage_bringup.profile import load_profile, ProfileError


def _profile(tmp_path, threads):
    data = yaml.safe_load((config_dir() / 'nano.yaml').read_text())
    data['launch']['compose_threads'] = threads
    path = tmp_path / 'nano_threads.yaml'
    path.write_text(yaml.safe_dump(data))
    return load_profile(str(path))


def test_compose_threads_reach_the_group_spec(tmp_path):
    groups = [g for g in compose_groups(_profile(tmp_path, 3)) if isinstance(g, NodeGroup)]
    assert groups and all(g.threads == 3 for g in groups)
    spec = tmp_path / 'group.yaml'
    write_group_spec(groups[0], tmp_path, spec)
    written = yaml.safe_load(spec.read_text())
    assert written['threads'] == 3
    assert [n['name'] for n in written['nodes']] == [m.name for m in groups[0].members]


@pytest.mark.parametrize('bad', [-1, 1.5, 'two', True])
def test_compose_threads_below_zero_or_not_whole_are_refused(tmp_path, bad):
    with pytest.raises(ProfileError, match='compose_threads'):
        compose_groups(_profile(tmp_path, bad))


def test_a_groups_members_are_built_in_the_order_the_group_lists_them(tmp_path):
    # sage_bringup.compose builds and spins them in this order: nano lists the audio chain
    # first, the microphone before its encoder (the first salience needs a 1 s window; the
    # microphone holds its first frames until the encoder subscribes), unlike the node list
    data = yaml.safe_load((config_dir() / 'nano.yaml').read_text())
    listed = data['launch']['compose_groups']['sensing']
    assert listed[:2] == ['microphone', 'audio_encoder']
    assert list(data['launch']['nodes']).index('camera') < list(data['launch']['nodes']).index(
        'microphone')
    groups = {g.name: g for g in compose_groups(load_profile('nano'))
              if isinstance(g, NodeGroup)}
    assert [m.name for m in groups['sensing'].members] == listed
    data['launch']['compose_groups']['sensing'] = list(reversed(listed))
    path = tmp_path / 'nano_reversed.yaml'
    path.write_text(yaml.safe_dump(data))
    groups = {g.name: g for g in compose_groups(load_profile(str(path)))
              if isinstance(g, NodeGroup)}
    assert [m.name for m in groups['sensing'].members] == list(reversed(listed))


def _nice_profile(tmp_path, nice):
    data = yaml.safe_load((config_dir() / 'nano.yaml').read_text())
    data['launch']['nodes']['memory']['nice'] = nice
    data['launch']['compose_groups']['cognition'].append('memory')
    path = tmp_path / 'nano_nice.yaml'
    path.write_text(yaml.safe_dump(data))
    return load_profile(str(path))


def test_memory_runs_nicer_and_a_group_at_its_least_nice_member(tmp_path):
    # nano: memory is background work and alone in its process; put in a group beside
    # scoring, it must not slow scoring down with it
    nodes = {n.name: n.nice for n in load_profile('nano').nodes}
    assert nodes.pop('memory') == 5 and set(nodes.values()) == {0}
    processes = {p.name: p for p in compose_groups(load_profile('nano'))}
    assert processes['memory'].nice == 5 and processes['cognition'].nice == 0
    assert {p.name: p.nice for p in compose_groups(_nice_profile(tmp_path, 7))
            if isinstance(p, NodeGroup)} == {'sensing': 0, 'cognition': 0}


@pytest.mark.parametrize('bad', [-1, 20, 2.5, 'low', True])
def test_a_nice_outside_0_to_19_or_not_whole_is_refused(tmp_path, bad):
    with pytest.raises(ProfileError, match=r'launch\.nodes\.memory: nice must be a whole number'):
        _nice_profile(tmp_path, bad)
