"""launch/*.launch.py and `sage launch` derive the same node set and parameters."""
from __future__ import annotations

import importlib.util
import shlex
import sys
import types
from pathlib import Path

import pytest
import yaml

from sage_bringup import start_later
from sage_bringup.paths import share_dir
from sage_bringup.profile import group_table, load_profile, ros_args
from sage_bringup.supervisor import Supervisor
from sage_common.params import flatten


def _launch_modules_or_standins(monkeypatch):
    """Real launch/launch_ros where installed (a ROS machine); else minimal recorders.

    launch and launch_ros are not on PyPI. The stand-ins only record what the launch file
    asks for (constructor arguments), which is exactly what this test compares.
    """
    try:
        # lazy: launch/launch_ros exist only on a ROS install; stand-ins otherwise
        import launch
        import launch_ros  # noqa: F401
        return getattr(launch, 'SAGE_STANDIN', False)  # stand-ins put in place earlier
    except ImportError:
        pass

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchDescription(Recorder):
        @property
        def entities(self):
            return self.args[0]

    launch = types.ModuleType('launch')
    launch.SAGE_STANDIN = True
    launch.LaunchDescription = LaunchDescription
    actions = types.ModuleType('launch.actions')
    for name in ('DeclareLaunchArgument', 'ExecuteProcess', 'OpaqueFunction',
                 'SetEnvironmentVariable'):
        setattr(actions, name, type(name, (Recorder,), {}))
    launch.actions = actions
    launch_ros = types.ModuleType('launch_ros')
    ros_actions = types.ModuleType('launch_ros.actions')
    ros_actions.Node = type('Node', (Recorder,), {})
    launch_ros.actions = ros_actions
    for name, mod in (('launch', launch), ('launch.actions', actions),
                      ('launch_ros', launch_ros), ('launch_ros.actions', ros_actions)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, 'sage_bringup.launch_description', raising=False)
    return True


def _actions_from_launch_file(profile: str, overrides: str, monkeypatch,
                              compose: str = '', role: str = '', **more: str) -> list:
    standins = _launch_modules_or_standins(monkeypatch)
    if not standins:
        pytest.skip('real launch_ros present: covered by launch_testing on ROS machines')
    path = share_dir() / 'launch' / f'{profile}.launch.py'
    spec = importlib.util.spec_from_file_location(f'{profile}_launch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    opaque = [e for e in description.entities if type(e).__name__ == 'OpaqueFunction'][0]
    configurations = {'set': overrides, 'domain_id': '9'}
    if compose:
        configurations['compose'] = compose
    if role:
        configurations['role'] = role
    configurations.update(more)
    context = types.SimpleNamespace(launch_configurations=configurations)
    return opaque.kwargs['function'](context, *opaque.kwargs['args'])


def _nodes_from_launch_file(profile: str, overrides: str, monkeypatch, compose: str = 'false'):
    actions = _actions_from_launch_file(profile, overrides, monkeypatch, compose=compose)
    nodes = [a.kwargs for a in actions if type(a).__name__ == 'Node']
    env = {a.args[0]: a.args[1] for a in actions
           if type(a).__name__ == 'SetEnvironmentVariable'}
    return nodes, env


@pytest.mark.parametrize('profile', ['nano', 'thor'])
def test_launch_file_and_sage_launch_start_the_same_nodes_with_the_same_parameters(
        profile, monkeypatch, tmp_path):
    overrides = ['snarc.threshold.target_rate_hz=0.2', 'camera.fps=10.0']
    nodes, env = _nodes_from_launch_file(profile, ' '.join(overrides), monkeypatch)

    prof = load_profile(profile, overrides)
    sup = Supervisor(prof.nodes, tmp_path, {})  # one process per node, as compose:=false
    sup.write_params()  # only the commands and parameter files are compared, nothing runs

    assert [n['name'] for n in nodes] == [c.spec.name for c in sup.children]
    for launched, child in zip(nodes, sup.children):
        cmd = sup.command(child)
        # Same start: memory starts late, behind the same prefix (sage_bringup.start_later).
        later = start_later.prefix(child.spec.start_delay_s, sys.executable)
        assert launched['prefix'] == (shlex.join(later) if later else None)
        assert cmd[:len(later)] == later
        cmd = cmd[len(later):]
        # Same executable: `python -m package.executable` == launch_ros (package, executable).
        assert cmd[2] == f"{launched['package']}.{launched['executable']}"
        assert f"__node:={launched['name']}" in cmd
        # Same parameters: the params file `sage launch` passes vs the launch file's dict.
        on_disk = yaml.safe_load(child.params_path.read_text())
        from_file = flatten(on_disk[f'/**/{child.spec.name}']['ros__parameters'])
        assert from_file == launched['parameters'][0]
        assert launched['respawn'] == child.spec.respawn
    assert [n['name'] for n in nodes if n['prefix']] == ['memory']
    by_name = {n['name']: n['parameters'][0] for n in nodes}
    assert by_name['camera']['fps'] == 10.0
    assert by_name['snarc']['threshold.target_rate_hz'] == 0.2
    assert env['ROS_DOMAIN_ID'] == '9'
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds_shm.xml')
    assert Path(env['FASTDDS_DEFAULT_PROFILES_FILE']).is_file()


@pytest.mark.parametrize('profile', ['nano', 'thor'])
def test_composed_launch_file_runs_one_respawned_process_per_group_with_its_nodes(
        profile, monkeypatch, tmp_path):
    monkeypatch.setenv('SAGE_RUNS_DIR', str(tmp_path))
    overrides = 'snarc.threshold.target_rate_hz=0.2 camera.fps=10.0'
    plain, _env = _nodes_from_launch_file(profile, overrides, monkeypatch)
    actions = _actions_from_launch_file(profile, overrides, monkeypatch, compose='true')

    prof = load_profile(profile)
    present = {n.name for n in prof.nodes}
    groups = {g: [n for n in names if n in present]
              for g, names in group_table(prof.settings, prof.path).items()}
    groups = {g: names for g, names in groups.items() if len(names) > 1}
    assert groups, 'the profile composes nothing'
    processes = [a.kwargs for a in actions if type(a).__name__ == 'ExecuteProcess']
    assert sorted(p['name'] for p in processes) == sorted(f'group_{g}' for g in groups)
    by_name = {n['name']: n for n in plain}
    composed: list[str] = []
    for process in processes:
        cmd = process['cmd']
        assert cmd[1:3] == ['-m', 'sage_bringup.compose']
        assert process['respawn'] is True
        group_spec = yaml.safe_load(Path(cmd[3]).read_text())
        assert group_spec['threads'] == prof.settings['compose_threads']
        members = group_spec['nodes']
        assert [m['name'] for m in members] == groups[process['name'].removeprefix('group_')]
        for member in members:
            launched = by_name[member['name']]
            # the same module, parameters and remappings as the node's own launch_ros Node
            assert member['module'] == f"{launched['package']}.{launched['executable']}"
            params = yaml.safe_load(Path(member['params_file']).read_text())
            assert flatten(params[f"/**/{member['name']}"]['ros__parameters']) == \
                launched['parameters'][0]
            assert [tuple(r) for r in member['remappings']] == \
                [tuple(r) for r in launched['remappings']]
            composed.append(member['name'])
    alone = [a.kwargs['name'] for a in actions if type(a).__name__ == 'Node']
    # every node runs once: in its group's process or as its own Node
    assert sorted(composed + alone) == sorted(by_name)
    assert 'memory' in alone
    # compose:=false keeps one Node per node
    off = _actions_from_launch_file(profile, overrides, monkeypatch, compose='false')
    assert not [a for a in off if type(a).__name__ == 'ExecuteProcess']
    assert len([a for a in off if type(a).__name__ == 'Node']) == len(by_name)
    # without the argument the profile decides: nano composes (it must fit the Nano), thor not
    default = _actions_from_launch_file(profile, overrides, monkeypatch)

    def kinds(acts):
        return sorted(type(a).__name__ for a in acts)
    assert kinds(default) == kinds(actions if profile == 'nano' else off)


def test_launch_files_take_a_role_like_sage_launch(monkeypatch):
    """ros2 launch sage nano.launch.py role:=edge / workstation.launch.py role:=assist."""
    for profile, role in (('nano', 'edge'), ('workstation', 'assist')):
        actions = _actions_from_launch_file(profile, '', monkeypatch, role=role,
                                            compose='false')
        nodes = {a.kwargs['name']: a.kwargs['parameters'][0] for a in actions
                 if type(a).__name__ == 'Node'}
        env = {a.args[0]: a.args[1] for a in actions
               if type(a).__name__ == 'SetEnvironmentVariable'}
        expected = load_profile(profile, role=role)
        assert list(nodes) == [n.name for n in expected.nodes]
        assert env['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds_multihost.xml')
        assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
    assert list(nodes) == ['language_encoder', 'shared_memory']  # the assist host
    remaps = [dict(a.kwargs['remappings']) for a in actions if type(a).__name__ == 'Node'
              and a.kwargs['name'] == 'shared_memory'][0]
    assert remaps['sage/memory/sleep'] == 'sage/shared_memory/sleep'
    edge = _actions_from_launch_file('nano', '', monkeypatch, role='edge', compose='false')
    standby = [a.kwargs['parameters'][0] for a in edge if type(a).__name__ == 'Node'
               and a.kwargs['name'] == 'language_encoder'][0]
    assert standby['remote_first.enabled'] is True


def test_launch_files_take_params_file_namespace_use_sim_time_and_log_level(monkeypatch,
                                                                            tmp_path):
    """params_file:=, namespace:=, use_sim_time:=, log_level:= give the launch_ros Nodes and
    the composed processes what `sage launch --params-file --namespace --use-sim-time
    --log-level` gives its processes."""
    monkeypatch.setenv('SAGE_RUNS_DIR', str(tmp_path))
    robot = tmp_path / 'robot.yaml'
    robot.write_text(yaml.safe_dump({'/**/camera': {'ros__parameters': {'fps': 12.5}}}))
    more = {'params_file': str(robot), 'namespace': '/r1', 'use_sim_time': 'true',
            'log_level': 'warn'}
    actions = _actions_from_launch_file('nano', 'imu.rate=50.0', monkeypatch, compose='false',
                                        **more)
    nodes = {a.kwargs['name']: a.kwargs for a in actions if type(a).__name__ == 'Node'}
    prof = load_profile('nano', ['imu.rate=50.0'], params_files=[robot], use_sim_time=True,
                        namespace='/r1', log_level='warn')
    sup = Supervisor(prof.nodes, tmp_path / 'sup', {}, ros_args=ros_args(prof))
    assert list(nodes) == [c.spec.name for c in sup.children]
    for child in sup.children:
        launched = nodes[child.spec.name]
        assert launched['namespace'] == '/r1'
        assert launched['arguments'] == ['--ros-args', '--log-level', 'warn']
        assert launched['parameters'][0]['use_sim_time'] is True
        cmd = sup.command(child)
        assert cmd[-4:] == ['-r', '__ns:=/r1', '--log-level', 'warn'], cmd
    assert nodes['camera']['parameters'][0]['fps'] == 12.5
    assert nodes['imu']['parameters'][0]['rate'] == 50.0
    composed = _actions_from_launch_file('nano', '', monkeypatch, compose='true', **more)
    for process in (a.kwargs for a in composed if type(a).__name__ == 'ExecuteProcess'):
        group = yaml.safe_load(Path(process['cmd'][3]).read_text())
        assert group['ros_args'] == ['-r', '__ns:=/r1', '--log-level', 'warn']
        for member in group['nodes']:
            params = yaml.safe_load(Path(member['params_file']).read_text())
            assert params[f"/**/{member['name']}"]['ros__parameters']['use_sim_time'] is True
    with pytest.raises(ValueError, match="use_sim_time:='sometimes'"):
        _actions_from_launch_file('nano', '', monkeypatch, use_sim_time='sometimes')
