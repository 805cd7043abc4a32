"""launch/*.launch.py and `sage launch` derive the same node set and parameters."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from sage.paths import share_dir
from sage.profile import load_profile
from sage.supervisor import Supervisor
from sage_common.params import flatten


def _launch_modules_or_standins(monkeypatch):
    """Real launch/launch_ros where installed (a ROS machine); else minimal recorders.

    launch and launch_ros are not on PyPI. The stand-ins only record what the launch file
    asks for (constructor arguments), which is exactly what this test compares.
    """
    try:
        import launch  # noqa: F401
        import launch_ros  # noqa: F401
        return False
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
    launch.LaunchDescription = LaunchDescription
    actions = types.ModuleType('launch.actions')
    for name in ('DeclareLaunchArgument', 'OpaqueFunction', 'SetEnvironmentVariable'):
        setattr(actions, name, type(name, (Recorder,), {}))
    launch.actions = actions
    launch_ros = types.ModuleType('launch_ros')
    ros_actions = types.ModuleType('launch_ros.actions')
    ros_actions.Node = type('Node', (Recorder,), {})
    launch_ros.actions = ros_actions
    for name, mod in (('launch', launch), ('launch.actions', actions),
                      ('launch_ros', launch_ros), ('launch_ros.actions', ros_actions)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, 'sage.launch_description', raising=False)
    return True


def _nodes_from_launch_file(profile: str, overrides: str, monkeypatch):
    standins = _launch_modules_or_standins(monkeypatch)
    if not standins:
        pytest.skip('real launch_ros present: covered by launch_testing on ROS machines')
    path = share_dir() / 'launch' / f'{profile}.launch.py'
    spec = importlib.util.spec_from_file_location(f'{profile}_launch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    opaque = [e for e in description.entities if type(e).__name__ == 'OpaqueFunction'][0]
    context = types.SimpleNamespace(launch_configurations={'set': overrides,
                                                           'domain_id': '9'})
    actions = opaque.kwargs['function'](context, *opaque.kwargs['args'])
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
    sup = Supervisor(prof.nodes, tmp_path, {})
    sup.write_params()  # only the commands and parameter files are compared, nothing runs

    assert [n['name'] for n in nodes] == [c.spec.name for c in sup.children]
    for launched, child in zip(nodes, sup.children):
        cmd = sup.command(child)
        # Same executable: `python -m package.executable` == launch_ros (package, executable).
        assert cmd[2] == f"{launched['package']}.{launched['executable']}"
        assert f"__node:={launched['name']}" in cmd
        # Same parameters: the params file `sage launch` passes vs the launch file's dict.
        on_disk = yaml.safe_load(child.params_path.read_text())
        from_file = flatten(on_disk[child.spec.name]['ros__parameters'])
        assert from_file == launched['parameters'][0]
        assert launched['respawn'] == child.spec.respawn
    by_name = {n['name']: n['parameters'][0] for n in nodes}
    assert by_name['camera']['fps'] == 10.0
    assert by_name['snarc']['threshold.target_rate_hz'] == 0.2
    assert env['ROS_DOMAIN_ID'] == '9'
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds_shm.xml')
    assert Path(env['FASTDDS_DEFAULT_PROFILES_FILE']).is_file()
