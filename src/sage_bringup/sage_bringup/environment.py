"""Environment every SAGE node runs with, shared by `sage launch` and the launch_ros files.

One rule decides the DDS settings for every command that talks to the graph (launch, status,
bag record/play, live replay, service install): an explicit flag wins, then the user's own
environment variable, then the profile, then SAGE's default. Each resolved value carries where
it came from, and the commands print it at start.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
import os
from typing import NamedTuple

from sage_bringup.paths import config_dir
from sage_bringup.profile import Profile
from sage_common.errors import SageError

DEFAULT_DOMAIN_ID = 42
MAX_DOMAIN_ID = 232  # the largest id ROS 2 allows on Linux
DEFAULT_RMW = 'rmw_fastrtps_cpp'  # the Fast DDS profiles in config/ are written for it
DISCOVERY_RANGES = ('LOCALHOST', 'SUBNET', 'OFF', 'SYSTEM_DEFAULT')
DEFAULT_SOURCE = 'SAGE default'
ENV_SOURCE = 'from the environment'


class DdsSettingError(SageError):
    """A DDS setting from the environment or a profile is not usable."""


class Choice(NamedTuple):
    """One resolved variable and where its value came from."""

    key: str
    value: str
    source: str

    def __str__(self) -> str:
        return f'{self.key}={self.value} ({self.source})'


def _user(environ: Mapping[str, str], key: str) -> str | None:
    """The user's value of a variable; unset and empty both mean 'not set'."""
    value = environ.get(key, '').strip()
    return value or None


def _domain(value: object, where: str) -> int:
    try:
        domain = int(str(value))
    except ValueError:
        domain = -1
    if not 0 <= domain <= MAX_DOMAIN_ID:
        raise DdsSettingError(f'{where}: {value!r} is not a ROS domain id (0-{MAX_DOMAIN_ID})')
    return domain


def resolve_domain(profile: Profile, domain_id: int | None = None,
                   environ: Mapping[str, str] | None = None) -> Choice:
    """ROS_DOMAIN_ID for a command: --domain-id, else $ROS_DOMAIN_ID, else the profile's
    launch.domain_id, else DEFAULT_DOMAIN_ID.

    Raises:
        DdsSettingError: the value from the environment or the profile is not a domain id.
    """
    environ = os.environ if environ is None else environ
    if domain_id is not None:
        return Choice('ROS_DOMAIN_ID', str(_domain(domain_id, '--domain-id')), 'from --domain-id')
    user = _user(environ, 'ROS_DOMAIN_ID')
    if user is not None:
        return Choice('ROS_DOMAIN_ID', str(_domain(user, '$ROS_DOMAIN_ID')), ENV_SOURCE)
    if 'domain_id' in profile.settings:
        value = _domain(profile.settings['domain_id'], f'{profile.path}: launch.domain_id')
        return Choice('ROS_DOMAIN_ID', str(value), f'from profile {profile.name}')
    return Choice('ROS_DOMAIN_ID', str(DEFAULT_DOMAIN_ID), DEFAULT_SOURCE)


def installed_rmws() -> set[str]:
    """RMW implementations registered in the ament index (empty when no index is found)."""
    # lazy: keeps rosbags out of this module's import
    from sage_common.typestore import share_prefixes
    names: set[str] = set()
    for share in share_prefixes():
        folder = share / 'ament_index' / 'resource_index' / 'rmw_typesupport'
        if folder.is_dir():
            names.update(p.name for p in folder.iterdir() if p.name != 'rmw_implementation')
    return names


def resolve_rmw(environ: Mapping[str, str] | None = None) -> Choice:
    """RMW_IMPLEMENTATION: the user's when set (and installed), else rmw_fastrtps_cpp.

    Raises:
        DdsSettingError: the user's RMW is not installed (every node would fail to start).
    """
    environ = os.environ if environ is None else environ
    user = _user(environ, 'RMW_IMPLEMENTATION')
    if user is None:
        return Choice('RMW_IMPLEMENTATION', DEFAULT_RMW, DEFAULT_SOURCE)
    installed = installed_rmws()
    if installed and user not in installed:
        raise DdsSettingError(f'$RMW_IMPLEMENTATION={user} is not installed (installed: '
                                f'{", ".join(sorted(installed))}); unset it or install it')
    return Choice('RMW_IMPLEMENTATION', user, ENV_SOURCE)


def resolve_discovery(profile: Profile, multi_host: bool | None = None,
                      environ: Mapping[str, str] | None = None) -> Choice:
    """ROS_AUTOMATIC_DISCOVERY_RANGE: SUBNET for --multi-host, else the user's when set,
    else the profile's launch.multi_host (SUBNET) or this host only (LOCALHOST).

    Raises:
        DdsSettingError: the user's value is not one ROS knows.
    """
    environ = os.environ if environ is None else environ
    key = 'ROS_AUTOMATIC_DISCOVERY_RANGE'
    if multi_host:
        return Choice(key, 'SUBNET', 'from --multi-host')
    user = _user(environ, key)
    if user is not None:
        if user.upper() not in DISCOVERY_RANGES:
            raise DdsSettingError(f'${key}={user} is not one of {", ".join(DISCOVERY_RANGES)}')
        return Choice(key, user.upper(), ENV_SOURCE)
    if profile.settings.get('multi_host', False):
        return Choice(key, 'SUBNET', f'from profile {profile.name} (launch.multi_host)')
    return Choice(key, 'LOCALHOST', DEFAULT_SOURCE)


def graph_choices(profile: Profile, domain_id: int | None = None,
                  multi_host: bool | None = None,
                  environ: Mapping[str, str] | None = None) -> list[Choice]:
    """The DDS settings a user may set, resolved, each with its source (printed at start)."""
    environ = os.environ if environ is None else environ
    discovery = resolve_discovery(profile, multi_host, environ)
    choices = [resolve_domain(profile, domain_id, environ), resolve_rmw(environ), discovery]
    if environ.get('ROS_DISTRO', '') == 'humble':
        # Humble predates ROS_AUTOMATIC_DISCOVERY_RANGE: its switch is ROS_LOCALHOST_ONLY
        user = _user(environ, 'ROS_LOCALHOST_ONLY')
        choices.append(Choice('ROS_LOCALHOST_ONLY', user, ENV_SOURCE) if user is not None
                       else Choice('ROS_LOCALHOST_ONLY',
                                   '1' if discovery.value == 'LOCALHOST' else '0',
                                   f'follows {discovery.key}'))
    # The transport lock (loopback-only UDP) follows SAGE's multi-host switch only: a wider
    # discovery range from the environment does not open the graph to the LAN.
    wide = bool(multi_host) or bool(profile.settings.get('multi_host', False))
    fastdds = config_dir() / str(profile.settings.get(
        'fastdds_profile_multi_host' if wide else 'fastdds_profile',
        'fastdds_multihost.xml' if wide else 'fastdds_shm.xml'))
    choices.append(Choice('FASTDDS_DEFAULT_PROFILES_FILE', str(fastdds),
                          f'profile {profile.name}, ' + ('multi-host' if wide else 'this host')))
    return choices


def graph_env(profile: Profile, domain_id: int | None = None, multi_host: bool | None = None,
              environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables to add to the nodes' environment.

    Fast DDS gets the shared-memory profile from config/ (large frames cost ~3 ms instead of
    ~14 ms), discovery stays on this host unless the user or the profile says otherwise, and
    Python output is unbuffered so node logs are complete when a node is killed.
    """
    env = as_env(graph_choices(profile, domain_id, multi_host, environ))
    env.update({
        # publish() writes from the caller's thread (a capture thread at real-time priority),
        # not from a normal-priority DDS thread; Humble's rmw_fastrtps defaulted to async
        'RMW_FASTRTPS_PUBLICATION_MODE': 'SYNCHRONOUS',
        'PYTHONUNBUFFERED': '1',
        'RCUTILS_LOGGING_BUFFERED_STREAM': '0',
        'RCUTILS_COLORIZED_OUTPUT': '0',
        'HF_HUB_OFFLINE': '1',
        'SAGE_PROFILE': profile.name,
        # the graph is open to the LAN: so is the Foxglove live view (sage.foxglove_node)
        'SAGE_MULTI_HOST': '1' if (multi_host or profile.settings.get('multi_host', False))
        else '0',
    })
    return env


def as_env(choices: list[Choice]) -> dict[str, str]:
    """The resolved settings as environment variables."""
    return {c.key: c.value for c in choices}


def describe(choices: list[Choice]) -> str:
    """One line for the start of a command: every resolved setting and where it came from."""
    return '; '.join(str(c) for c in choices if c.key != 'FASTDDS_DEFAULT_PROFILES_FILE')


# What this process needs too, so its own observer node (monitor, bench probe) joins the graph.
OBSERVER_KEYS = ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY',
                 'RMW_IMPLEMENTATION', 'FASTDDS_DEFAULT_PROFILES_FILE')


def join_graph(env: Mapping[str, str]) -> None:
    """Put the graph's domain, discovery range, RMW and Fast DDS profile into this process."""
    os.environ.update({k: env[k] for k in OBSERVER_KEYS if k in env})


@contextmanager
def joined_graph(env: Mapping[str, str]) -> Iterator[None]:
    """join_graph for the length of a block, then this process's own values come back."""
    saved = {k: os.environ.get(k) for k in OBSERVER_KEYS}
    join_graph(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
