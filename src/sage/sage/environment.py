"""Environment every SAGE node runs with, shared by `sage launch` and the launch_ros files."""
from __future__ import annotations

import os

from sage.paths import config_dir
from sage.profile import Profile

DEFAULT_DOMAIN_ID = 42


def graph_env(profile: Profile, domain_id: int | None = None) -> dict[str, str]:
    """Variables to add to the nodes' environment.

    Fast DDS gets the shared-memory profile from config/ (large frames cost ~3 ms instead of
    ~14 ms), discovery stays on this host, and Python output is unbuffered so node logs are
    complete when a node is killed.
    """
    # Default: DDS stays on this host (shared memory + loopback UDP); multi_host opens the LAN.
    multi_host = bool(profile.settings.get('multi_host', False))
    fastdds = config_dir() / str(profile.settings.get(
        'fastdds_profile_multi_host' if multi_host else 'fastdds_profile',
        'fastdds_multihost.xml' if multi_host else 'fastdds_shm.xml'))
    if domain_id is None:
        domain_id = int(os.environ.get('ROS_DOMAIN_ID')
                        or profile.settings.get('domain_id', DEFAULT_DOMAIN_ID))
    env = {
        'ROS_DOMAIN_ID': str(domain_id),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET' if multi_host else 'LOCALHOST',
        'FASTDDS_DEFAULT_PROFILES_FILE': str(fastdds),
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
        # publish() writes from the caller's thread (a capture thread at real-time priority),
        # not from a normal-priority DDS thread; Humble's rmw_fastrtps defaulted to async
        'RMW_FASTRTPS_PUBLICATION_MODE': 'SYNCHRONOUS',
        'PYTHONUNBUFFERED': '1',
        'RCUTILS_LOGGING_BUFFERED_STREAM': '0',
        'RCUTILS_COLORIZED_OUTPUT': '0',
        'HF_HUB_OFFLINE': '1',
        'SAGE_PROFILE': profile.name,
    }
    if os.environ.get('ROS_DISTRO', '') == 'humble':
        # Humble predates ROS_AUTOMATIC_DISCOVERY_RANGE
        env['ROS_LOCALHOST_ONLY'] = '0' if multi_host else '1'
    return env


# What this process needs too, so its own observer node (monitor, bench probe) joins the graph.
OBSERVER_KEYS = ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def join_graph(env: dict[str, str]) -> None:
    """Put the graph's domain, discovery range and Fast DDS profile into this process."""
    os.environ.update({k: env[k] for k in OBSERVER_KEYS})
