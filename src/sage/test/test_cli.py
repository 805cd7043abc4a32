"""`sage` commands fail at once, with one clear line, on bad input."""
import os
import subprocess
import sys
import time

import pytest

from sage.cli_args import expand_overrides


def _sage(*args, env=None):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, '-m', 'sage.cli', *args], capture_output=True,
                          text=True, timeout=60, env=env)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize('args,message', [
    (['launch', 'nano', '--set', 'camera.fps=-1'],
     "ERROR: camera: parameter 'fps': -1.0 is below the minimum 0.1"),
    (['launch', 'nano', '--set', 'snarc.weight.surprise=1'],
     "ERROR: snarc: unknown parameter 'weight.surprise' (did you mean weights.surprise"),
    (['launch', 'pico'], "ERROR: unknown profile 'pico' (known: nano, thor, workstation)"),
    (['launch', 'nano', '--role', 'cloud'],
     "ERROR: profile 'nano' has no role 'cloud' (launch.roles: edge, assist)"),
    (['bench', 'nothing'], "ERROR: unknown benchmark 'nothing'"),
    (['bench', 'memory', '--with-graph'], "ERROR: benchmark 'memory' takes no with_graph option"),
    (['bench', 'memory', '--compose'], "ERROR: benchmark 'memory' takes no compose option"),
    # several overrides after one --set: each is read and checked (the second one here)
    (['launch', 'nano', '--set', 'camera.fps=5', 'camera.width=-3'],
     "ERROR: camera: parameter 'width': -3 is below the minimum 16"),
    (['launch', 'nano', '--set', 'camera.fps=-1', 'camera.width=64', '--duration', '5'],
     "ERROR: camera: parameter 'fps': -1.0 is below the minimum 0.1"),
])
def test_bad_arguments_fail_with_exit_code_2_and_start_nothing(args, message, tmp_path):
    proc, _ = _sage(*args, *(['--run-dir', str(tmp_path / 'run')] if args[0] == 'launch'
                            else []))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / 'run' / 'logs').exists()   # no node was started


def test_an_rmw_that_is_not_installed_fails_launch_before_any_node_starts(tmp_path):
    env = dict(os.environ, RMW_IMPLEMENTATION='rmw_nothere_cpp')
    proc, _ = _sage('launch', 'nano', '--duration', '5', '--run-dir', str(tmp_path / 'run'),
                    env=env)
    assert proc.returncode == 2
    assert 'ERROR: $RMW_IMPLEMENTATION=rmw_nothere_cpp is not installed' in proc.stderr
    assert not (tmp_path / 'run' / 'logs').exists()


def test_overrides_separated_by_spaces_become_one_set_each():
    assert expand_overrides(['launch', 'nano', '--set', 'a.b=1', 'c.d.e=x', '--duration', '3']
                            ) == ['launch', 'nano', '--set', 'a.b=1', '--set', 'c.d.e=x',
                                  '--duration', '3']
    # a positional argument after the overrides (a bag folder) stays positional
    assert expand_overrides(['replay', '--set=a.b=1', 'c.d=2', 'runs/bag']) == [
        'replay', '--set', 'a.b=1', '--set', 'c.d=2', 'runs/bag']
    # --vs takes one variant: further overrides join it, quoted as the shell would
    assert expand_overrides(['experiment', 'b', '--vs', 'a.b=1', 'c.d=x y']) == [
        'experiment', 'b', '--vs', "a.b=1 'c.d=x y'"]
    assert expand_overrides(['launch', '--', '--set', 'a.b=1', 'c.d=2']) == [
        'launch', '--', '--set', 'a.b=1', 'c.d=2']


def test_train_help_shows_the_trainers_own_options():
    proc, _ = _sage('train', 'vision', '--help')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('usage: sage train')
    for option in ('--steps', '--seed', '--out', '--no-export', '{vision,audio}'):
        assert option in proc.stdout
