"""Composition groups: which of a profile's nodes share one process (`launch.compose_groups`).

A group runs as `python -m sage_bringup.compose` (one rclpy context); nodes in no group
keep a process of their own. The Supervisor treats a group like one node: it respawns the
whole group when its process dies.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from sage_bringup.profile import (dump_params, group_table, NodeSpec, params_file_content, Profile,
                                  ProfileError)

COMPOSE_MODULE = 'sage_bringup.compose'
# launch.compose_threads when the profile leaves it out: 0 = one SingleThreadedExecutor per node,
# each on its own thread. Same machine, same load, the live nano graph composed: 82 audio and 414
# IMU saliences in 20 s, vs 34 and 279 with one MultiThreadedExecutor(9) and 19 and 181 with one
# SingleThreadedExecutor (rclpy rebuilds one wait set over every node's entities per callback).
DEFAULT_THREADS = 0


@dataclass(frozen=True)
class NodeGroup:
    """Nodes run in one process, supervised as one."""

    name: str
    members: tuple[NodeSpec, ...]
    threads: int = DEFAULT_THREADS  # 0: an executor per node; 1: one; N: MultiThreadedExecutor

    @property
    def respawn(self) -> bool:
        return all(m.respawn for m in self.members)

    @property
    def stop_last(self) -> bool:
        return any(m.stop_last for m in self.members)

    @property
    def start_delay_s(self) -> float:
        """The least of its members': a late node delays no other node of its group."""
        return min(m.start_delay_s for m in self.members)


Process = NodeSpec | NodeGroup


def write_params_file(node: NodeSpec, params_dir: Path) -> Path:
    """The node's --params-file (its profile section after overrides) in params_dir."""
    path = params_dir / f'{node.name}.yaml'
    path.write_text(dump_params(params_file_content(node)))
    return path


def write_group_spec(group: NodeGroup, params_dir: Path, spec_path: Path,
                     ros_args: list[str] | tuple[str, ...] = ()) -> None:
    """The group's node list for `python -m sage_bringup.compose spec_path`, with each member's
    params file written beside it in params_dir; ros_args (the graph's namespace and log level,
    profile.ros_args) go to the process's rclpy.init."""
    nodes = [{'name': n.name, 'module': n.module,
              'params_file': str(write_params_file(n, params_dir)),
              'remappings': [list(r) for r in n.remappings]} for n in group.members]
    spec_path.write_text(yaml.safe_dump({'threads': group.threads, 'ros_args': list(ros_args),
                                         'nodes': nodes}, sort_keys=False))


def compose_threads(profile: Profile) -> int:
    """`launch.compose_threads`: how each composed process spins its nodes (sage_bringup.compose):
    0 = a SingleThreadedExecutor per node on its own thread, 1 = one SingleThreadedExecutor,
    N = one MultiThreadedExecutor of N threads.

    Raises:
        ProfileError: not a whole number >= 0.
    """
    value = profile.settings.get('compose_threads', DEFAULT_THREADS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProfileError(f'{profile.path}: launch.compose_threads must be a whole number '
                           f'>= 0 (0 = an executor per node), not {value!r}')
    return value


def compose_groups(profile: Profile) -> tuple[Process, ...]:
    """The profile's processes with its `launch.compose_groups` applied, in node order; a
    group's members in the order the group lists them (the order they are built in).

    Nodes missing from the profile (e.g. left out with --without) are skipped; a group left
    with one node runs that node alone.

    (load_profile has checked the groups against the profile's nodes: group_table.)
    """
    group_of = {name: group for group, names in group_table(profile.settings, profile.path).items()
                for name in names}
    members: dict[str, list[NodeSpec]] = {}
    order: list[str | NodeSpec] = []
    for node in profile.nodes:
        group = group_of.get(node.name)
        if group is None:
            order.append(node)
            continue
        if group not in members:
            members[group] = []
            order.append(group)
        members[group].append(node)
    table = group_table(profile.settings, profile.path)
    for group, nodes in members.items():
        # built in the order the group lists them (sage_bringup.compose spins each as soon as
        # it is built): the profile puts the audio chain first, whose first window takes 1 s
        nodes.sort(key=lambda n: table[group].index(n.name))
    out: list[Process] = []
    for item in order:
        if isinstance(item, NodeSpec):
            out.append(item)
        elif len(members[item]) == 1:
            out.append(members[item][0])
        else:
            out.append(NodeGroup(item, tuple(members[item]), compose_threads(profile)))
    return tuple(out)
