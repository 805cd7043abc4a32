"""`sage` commands fail at once, with one clear line, on bad input."""
import subprocess
import sys
import time

import pytest


def _sage(*args):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, '-m', 'sage.cli', *args], capture_output=True,
                          text=True, timeout=60)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize('args,message', [
    (['launch', 'nano', '--set', 'camera.fps=-1'],
     "ERROR: camera: parameter 'fps': -1.0 is below the minimum 0.1"),
    (['launch', 'nano', '--set', 'snarc.weight.surprise=1'],
     "ERROR: snarc: unknown parameter 'weight.surprise' (did you mean weights.surprise"),
    (['launch', 'pico'], "ERROR: unknown profile 'pico' (known: nano, thor)"),
    (['bench', 'nothing'], "ERROR: unknown benchmark 'nothing'"),
    (['bench', 'memory', '--with-graph'], "ERROR: benchmark 'memory' takes no with_graph option"),
])
def test_bad_arguments_fail_with_exit_code_2_and_start_nothing(args, message, tmp_path):
    proc, _ = _sage(*args, *(['--run-dir', str(tmp_path / 'run')] if args[0] == 'launch'
                            else []))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / 'run' / 'logs').exists()   # no node was started
