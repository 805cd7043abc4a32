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


def _late_profile(tmp_path, delay):
    data = yaml.safe_load((config_dir() / 'nano.yaml').read_text())
    data['launch']['nodes']['memory']['start_delay_s'] = delay
    data['launch']['compose_groups']['cognition'].append('memory')
    path = tmp_path / 'nano_late.yaml'
    path.write_text(yaml.safe_dump(data))
    return load_profile(str(path))


def test_memory_starts_late_and_a_group_with_its_earliest_member(tmp_path):
    # nano: memory, alone in its process, starts 1 s after the others; put in a group beside
    # scoring, it must not delay scoring with it
    delays = {n.name: n.start_delay_s for n in load_profile('nano').nodes}
    assert delays.pop('memory') == 1.0 and set(delays.values()) == {0.0}
    processes = {p.name: p for p in compose_groups(load_profile('nano'))}
    assert processes['memory'].start_delay_s == 1.0
    assert processes['cognition'].start_delay_s == 0.0
    assert {p.name: p.start_delay_s for p in compose_groups(_late_profile(tmp_path, 2.5))
            if isinstance(p, NodeGroup)} == {'sensing': 0.0, 'cognition': 0.0}


@pytest.mark.parametrize('bad', [-1, 61, 'soon', True])
def test_a_start_delay_outside_0_to_60_s_is_refused(tmp_path, bad):
    with pytest.raises(ProfileError,
                       match=r'launch\.nodes\.memory: start_delay_s must be a number of seconds'):
        _late_profile(tmp_path, bad)
