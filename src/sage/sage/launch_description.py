"""launch_ros descriptions built from the same profile loader as `sage launch`.

`launch/nano.launch.py` and `launch/thor.launch.py` call `generate(<profile>)`. Launch
arguments:
  set:=\"node.param=value node.param=value\"   overrides, checked like `sage launch --set`
  domain_id:=N                              ROS_DOMAIN_ID for the graph (default:
                                            $ROS_DOMAIN_ID, else the profile's)
The user's RMW_IMPLEMENTATION and discovery range are kept when set (sage.environment).
"""
from __future__ import annotations

import shlex

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch_ros.actions import Node

from sage.environment import graph_env
from sage.profile import NodeSpec, Profile, load_profile


def node_action(spec: NodeSpec, profile: Profile) -> Node:
    """One launch_ros Node for a profile node: same executable, name, parameters, remaps."""
    settings = profile.settings
    return Node(package=spec.package, executable=spec.executable, name=spec.name,
                parameters=[dict(spec.parameters)], remappings=list(spec.remappings),
                respawn=spec.respawn,
                respawn_delay=float(settings.get('respawn_backoff_s', 0.5)),
                output='screen')


def _actions(context, profile_name: str) -> list:
    overrides = shlex.split(context.launch_configurations.get('set', ''))
    domain = context.launch_configurations.get('domain_id', '')
    profile = load_profile(profile_name, overrides)
    env = graph_env(profile, int(domain) if domain else None)
    actions: list = [SetEnvironmentVariable(k, v) for k, v in env.items()]
    actions += [node_action(spec, profile) for spec in profile.nodes]
    return actions


def generate(profile_name: str) -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument('set', default_value='',
                              description='space-separated node.param=value overrides'),
        DeclareLaunchArgument('domain_id', default_value='',
                              description='ROS_DOMAIN_ID for the graph (default: '
                                          "$ROS_DOMAIN_ID, else the profile's launch.domain_id)"),
        OpaqueFunction(function=_actions, args=[profile_name]),
    ])
