"""launch_ros descriptions built from the same profile loader as `sage launch`.

`launch/nano.launch.py` and `launch/thor.launch.py` call `generate(<profile>)`. Launch
arguments:
  set:=\"node.param=value node.param=value\"   overrides, checked like `sage launch --set`
  domain_id:=N                              ROS_DOMAIN_ID for the graph (default:
                                            $ROS_DOMAIN_ID, else the profile's)
  compose:=true|false                       run each launch.compose_groups group in one
                                            process (default: the profile's launch.compose)
  role:=edge|assist                         this host's part of a graph that spans two hosts
                                            (launch.roles; opens DDS to the LAN)
  params_file:=FILE                         a ROS params file laid over the profile's values
                                            (checked like set:=, which wins)
  namespace:=/r1                            ROS namespace of the whole graph (topics, services
                                            and parameters move under it)
  use_sim_time:=true|false                  every node on /clock time (default: as the profile
                                            and set:= say)
  log_level:=debug|info|warn|error|fatal    ROS log level of every node
The user's RMW_IMPLEMENTATION and discovery range are kept when set (sage_bringup.environment).

Composition: launch_ros's ComposableNodeContainer loads C++ components only, so its Python
equivalent here is one ExecuteProcess per group running `python -m sage_bringup.compose GROUP.yaml`
(every member node in one rclpy context, spun as launch.compose_threads says, each with its own
name, params file and remappings), respawned as a whole like `sage launch --compose` does.
Nodes in no group stay launch_ros Nodes.
"""
from __future__ import annotations

from pathlib import Path
import shlex
import sys

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, OpaqueFunction,
                            SetEnvironmentVariable)
from launch_ros.actions import Node

from sage_bringup.environment import graph_env
from sage_bringup.launch_cmd import new_run_dir
from sage_bringup import start_later
from sage_bringup.node_groups import COMPOSE_MODULE, compose_groups, NodeGroup, write_group_spec
from sage_bringup.profile import NodeSpec, Profile, load_profile, ros_args

TRUE_WORDS = ('true', '1', 'yes', 'on')
FALSE_WORDS = ('false', '0', 'no', 'off', '')


def _respawn_delay(profile: Profile) -> float:
    return float(profile.settings.get('respawn_backoff_s', 0.5))


def node_action(spec: NodeSpec, profile: Profile) -> Node:
    """One launch_ros Node for a profile node: same executable, name, parameters, remaps,
    and the graph's namespace and log level."""
    level = profile.settings.get('log_level')
    return Node(package=spec.package, executable=spec.executable, name=spec.name,
                namespace=profile.settings.get('namespace') or None,
                parameters=[{**spec.parameters, **spec.ros_parameters}],
                remappings=list(spec.remappings),
                arguments=['--ros-args', '--log-level', level] if level else None,
                respawn=spec.respawn, respawn_delay=_respawn_delay(profile), output='screen',
                prefix=shlex.join(start_later.prefix(spec.start_delay_s, sys.executable))
                or None)


def group_action(group: NodeGroup, profile: Profile, params_dir: Path) -> ExecuteProcess:
    """One process for a composition group (the Python ComposableNodeContainer): its node
    list and its members' params files are written to params_dir, as `sage launch` does."""
    spec_path = params_dir / f'group_{group.name}.yaml'
    write_group_spec(group, params_dir, spec_path, ros_args(profile))
    return ExecuteProcess(cmd=[*start_later.prefix(group.start_delay_s, sys.executable),
                               sys.executable, '-m', COMPOSE_MODULE, str(spec_path)],
                          name=f'group_{group.name}', respawn=group.respawn,
                          respawn_delay=_respawn_delay(profile), output='screen')


def compose_choice(value: str, profile: Profile) -> bool:
    """The compose:= argument; empty means the profile's launch.compose."""
    word = value.strip().lower()
    if not word:
        return profile.composed()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise ValueError(f"compose:='{value}': expected true or false")
    return word in TRUE_WORDS


def sim_time_choice(value: str) -> bool | None:
    """The use_sim_time:= argument; empty means as the profile and set:= say."""
    word = value.strip().lower()
    if not word:
        return None
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise ValueError(f"use_sim_time:='{value}': expected true or false")
    return word in TRUE_WORDS


def _actions(context, profile_name: str) -> list:
    config = context.launch_configurations
    overrides = shlex.split(config.get('set', ''))
    domain = config.get('domain_id', '')
    role = config.get('role', '').strip()
    params_file = config.get('params_file', '').strip()
    profile = load_profile(profile_name, overrides, role=role or None,
                           params_files=[Path(params_file)] if params_file else [],
                           use_sim_time=sim_time_choice(config.get('use_sim_time', '')),
                           namespace=config.get('namespace', ''),
                           log_level=config.get('log_level', ''))
    # a role widens discovery as `sage launch --role` does, whatever the shell says
    env = graph_env(profile, int(domain) if domain else None, multi_host=bool(role) or None)
    actions: list = [SetEnvironmentVariable(k, v) for k, v in env.items()]
    if not compose_choice(config.get('compose', ''), profile):
        return actions + [node_action(spec, profile) for spec in profile.nodes]
    params_dir = new_run_dir(profile) / 'params'
    params_dir.mkdir()
    for process in compose_groups(profile):
        if isinstance(process, NodeGroup):
            actions.append(group_action(process, profile, params_dir))
        else:
            actions.append(node_action(process, profile))
    return actions


def generate(profile_name: str) -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('set', default_value='',
                              description='space-separated node.param=value overrides'),
        DeclareLaunchArgument('domain_id', default_value='',
                              description='ROS_DOMAIN_ID for the graph (default: '
                                          "$ROS_DOMAIN_ID, else the profile's launch.domain_id)"),
        DeclareLaunchArgument('compose', default_value='',
                              description='true: each launch.compose_groups group in one '
                                          'process (sage_bringup.compose); default: the '
                                          'profile\'s '
                                          'launch.compose'),
        DeclareLaunchArgument('role', default_value='',
                              description="this host's part when the graph spans two hosts "
                                          '(launch.roles: edge, assist); default: the whole '
                                          'graph on this host'),
        DeclareLaunchArgument('params_file', default_value='',
                              description="a ROS params file laid over the profile's values "
                                          '(checked like set:=, which wins)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='ROS namespace of the whole graph (e.g. /r1); '
                                          'default none: /sage/...'),
        DeclareLaunchArgument('use_sim_time', default_value='',
                              description='true: every node on /clock time (a bag played '
                                          'with --clock); default: as the profile says'),
        DeclareLaunchArgument('log_level', default_value='',
                              description='ROS log level of every node (debug, info, warn, '
                                          'error, fatal); default: info'),
        OpaqueFunction(function=_actions, args=[profile_name]),
    ])
