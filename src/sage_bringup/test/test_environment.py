"""One rule for the DDS settings of every command, and the user's own ROS settings kept."""
from __future__ import annotations

from dataclasses import replace
import xml.etree.ElementTree as ET

import pytest

from sage_bringup.environment import (DEFAULT_DOMAIN_ID, DdsSettingError, graph_choices, graph_env,
                              resolve_domain)
from sage_bringup.paths import config_dir
from sage_bringup.profile import load_launch_settings

USER_KEYS = ('ROS_DOMAIN_ID', 'RMW_IMPLEMENTATION', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
             'ROS_LOCALHOST_ONLY', 'ROS_DISTRO')


@pytest.fixture
def bare_env(monkeypatch):
    """This process without any of the user's ROS settings."""
    for key in USER_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.fixture
def nano():
    return load_launch_settings('nano')


def test_domain_comes_from_the_flag_then_the_environment_then_the_profile(bare_env, nano):
    assert nano.settings['domain_id'] == 42
    assert resolve_domain(nano) == ('ROS_DOMAIN_ID', '42', 'from profile nano')
    bare_env.setenv('ROS_DOMAIN_ID', '')  # an empty variable is not a setting
    assert resolve_domain(nano).value == '42'
    bare_env.setenv('ROS_DOMAIN_ID', '17')
    assert resolve_domain(nano) == ('ROS_DOMAIN_ID', '17', 'from the environment')
    assert resolve_domain(nano, 9) == ('ROS_DOMAIN_ID', '9', 'from --domain-id')
    bare_env.delenv('ROS_DOMAIN_ID')
    no_domain = replace(nano, settings={k: v for k, v in nano.settings.items()
                                        if k != 'domain_id'})
    assert resolve_domain(no_domain).value == str(DEFAULT_DOMAIN_ID)
    # graph_env (what `sage launch` and the launch files give the nodes) uses the same rule
    assert graph_env(nano)['ROS_DOMAIN_ID'] == '42'


def test_a_bad_domain_in_the_environment_is_refused_with_its_source(bare_env, nano):
    bare_env.setenv('ROS_DOMAIN_ID', 'forty')
    with pytest.raises(DdsSettingError, match=r"\$ROS_DOMAIN_ID: 'forty' is not a ROS domain"):
        resolve_domain(nano)
    bare_env.setenv('ROS_DOMAIN_ID', '300')
    with pytest.raises(DdsSettingError, match=r'0-232'):
        graph_env(nano)


def test_defaults_fill_in_only_what_the_user_did_not_set(bare_env, nano):
    env = graph_env(nano)
    assert env['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds_shm.xml')
    sources = {c.key: c.source for c in graph_choices(nano)}
    assert sources['RMW_IMPLEMENTATION'] == sources['ROS_AUTOMATIC_DISCOVERY_RANGE'] == (
        'SAGE default')


def test_the_users_rmw_and_discovery_range_are_kept(bare_env, nano):
    bare_env.setenv('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    bare_env.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'OFF')
    env = graph_env(nano)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'OFF'
    assert env['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'
    sources = {c.key: c.source for c in graph_choices(nano)}
    assert sources['RMW_IMPLEMENTATION'] == 'from the environment'
    assert sources['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'from the environment'
    # the transport stays on this host: a wider range alone does not open the LAN
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds_shm.xml')


def test_multi_host_flag_beats_the_environment_and_the_environment_beats_the_profile(
        bare_env, nano):
    bare_env.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    flagged = graph_env(nano, multi_host=True)
    assert flagged['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
    assert flagged['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds_multihost.xml')
    lan_profile = replace(nano, settings={**nano.settings, 'multi_host': True})
    assert graph_env(lan_profile)['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    bare_env.delenv('ROS_AUTOMATIC_DISCOVERY_RANGE')
    choice = next(c for c in graph_choices(lan_profile)
                  if c.key == 'ROS_AUTOMATIC_DISCOVERY_RANGE')
    assert choice.value == 'SUBNET' and 'profile nano' in choice.source


def test_humble_keeps_the_users_localhost_only_switch(bare_env, nano):
    bare_env.setenv('ROS_DISTRO', 'humble')
    assert graph_env(nano)['ROS_LOCALHOST_ONLY'] == '1'
    bare_env.setenv('ROS_LOCALHOST_ONLY', '0')
    assert graph_env(nano)['ROS_LOCALHOST_ONLY'] == '0'


def test_an_rmw_that_is_not_installed_is_refused_before_anything_starts(bare_env, nano):
    bare_env.setenv('RMW_IMPLEMENTATION', 'rmw_nothere_cpp')
    with pytest.raises(DdsSettingError, match=r'rmw_nothere_cpp is not installed \(installed: '
                                              r'.*rmw_fastrtps_cpp'):
        graph_env(nano)
    bare_env.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'NEARBY')
    bare_env.delenv('RMW_IMPLEMENTATION')
    with pytest.raises(DdsSettingError, match='NEARBY is not one of LOCALHOST, SUBNET'):
        graph_env(nano)


@pytest.mark.parametrize('name,announce_s,first', [('fastdds_shm.xml', '1', '10'),
                                                    ('fastdds_multihost.xml', None, None)])
def test_fastdds_profiles_are_strict_xml_and_announce_as_chosen(name, announce_s, first):
    """Fast DDS's own parser forgives what a strict one rejects (e.g. '--' in a comment); a
    profile it cannot read leaves the graph on the builtin transports, open to the LAN. On
    one host a new participant announces itself 10 times over its first second and then
    every 1 s (a node found late costs first salience); across hosts Fast DDS's defaults
    (5, then every 3 s) keep announcements off the link."""
    ns = {'f': 'http://www.eprosima.com'}
    root = ET.parse(config_dir() / name).getroot()
    participant = root.find('f:profiles/f:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    lease = participant.find('f:rtps/f:builtin/f:discovery_config/f:leaseAnnouncement', ns)
    assert (None if lease is None else lease.find('f:sec', ns).text) == announce_s
    initial = participant.find('f:rtps/f:builtin/f:discovery_config/f:initialAnnouncements', ns)
    assert (None if initial is None else initial.find('f:count', ns).text) == first
    if initial is not None:
        assert initial.find('f:period/f:nanosec', ns).text == '100000000'
