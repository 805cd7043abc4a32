"""Supervisor behaviour with real child processes (tiny Python programs, no ROS)."""
from __future__ import annotations

import os
import signal
import sys
import time

from sage_bringup.profile import NodeSpec
from sage_bringup.supervisor import Supervisor, SupervisorConfig

PROGRAMS = {
    # Runs until SIGINT, then exits 0 ('ready' in its log: a SIGINT from then on is caught).
    'steady': 'import time\ntry:\n    print("ready", flush=True)\n    time.sleep(60)\n'
              'except KeyboardInterrupt:\n    pass\n',
    # Crashes right away.
    'crasher': 'import sys\nsys.exit(3)\n',
    # Refuses its configuration (the nodes' exit code for bad parameters).
    'misconfigured': 'import sys\nprint("ERROR: parameter \'fps\': -1 is below 0.1")\n'
                     'sys.exit(2)\n',
    # Ignores SIGINT: must be killed after the grace period.
    'stubborn': 'import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n'
                'time.sleep(60)\n',
}


def _supervisor(tmp_path, names, **cfg):
    pkg = tmp_path / 'fakepkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    for name, code in PROGRAMS.items():
        (pkg / f'{name}.py').write_text(code)
    specs = tuple(NodeSpec(name=n, package='fakepkg', executable=n, params_module='',
                           parameters={'x': 1}) for n in names)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    config = SupervisorConfig(backoff_initial_s=0.2, backoff_max_s=1.0, grace_s=1.0, **cfg)
    return Supervisor(specs, tmp_path / 'run', env, config, python=sys.executable,
                      log=lambda s: None)


def _wait_ready(child, timeout_s=30.0):
    """Until the child has written 'ready' to its log (a deadline, not a retry)."""
    end = time.monotonic() + timeout_s
    while b'ready' not in (child.log_path.read_bytes() if child.log_path.exists() else b''):
        assert time.monotonic() < end, f'{child.spec.name} never became ready'
        time.sleep(0.02)


def _poll_for(sup, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sup.poll()
        time.sleep(0.05)


def test_crashing_node_is_respawned_with_growing_backoff_then_given_up(tmp_path):
    sup = _supervisor(tmp_path, ['crasher', 'steady'], max_consecutive_failures=3)
    sup.start()
    _poll_for(sup, 4.0)
    crasher = sup.children[0]
    assert crasher.restarts == 3 and crasher.gave_up
    assert crasher.exit_codes == [3, 3, 3, 3]
    assert sup.failed == ['crasher']
    assert 'steady' in sup.pids()
    assert sup.stop() == []


def test_configuration_error_is_not_respawned_and_is_reported(tmp_path):
    sup = _supervisor(tmp_path, ['misconfigured'])
    sup.start()
    _poll_for(sup, 1.5)
    assert sup.children[0].restarts == 0
    assert sup.config_error and "'fps'" in sup.config_error
    sup.stop()


def test_stop_interrupts_children_and_kills_those_that_ignore_it(tmp_path):
    sup = _supervisor(tmp_path, ['steady', 'stubborn'])
    sup.start()
    time.sleep(0.5)
    pids = sup.pids()
    killed = sup.stop()
    assert killed == ['stubborn']
    assert sup.children[0].proc.returncode == 0
    for pid in pids.values():
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive


def test_node_command_carries_name_params_file_and_remaps(tmp_path):
    sup = _supervisor(tmp_path, ['steady'])
    child = sup.children[0]
    object.__setattr__(child.spec, 'remappings', (('/in', '/sage/in'),))
    cmd = sup.command(child)
    assert cmd[1:3] == ['-m', 'fakepkg.steady']
    assert cmd[3:] == ['--ros-args', '-r', '__node:=steady', '--params-file',
                       str(child.params_path), '-r', '/in:=/sage/in']


def test_stop_last_nodes_are_interrupted_after_the_others_have_exited(tmp_path):
    # Each program notes when it got SIGINT; 'late' is marked stop_last.
    notes = ('import sys, time, pathlib\n'
             'try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n'
             '    stopped = pathlib.Path(sys.argv[0]).with_suffix(".stopped")\n'
             '    stopped.write_text(repr(time.time()))\n')
    PROGRAMS['late'] = PROGRAMS['early'] = notes
    sup = _supervisor(tmp_path, ['late', 'early'])
    object.__setattr__(sup.children[0].spec, 'stop_last', True)
    sup.start()
    time.sleep(0.5)
    assert sup.stop() == []
    late = float((tmp_path / 'fakepkg' / 'late.stopped').read_text())
    early = float((tmp_path / 'fakepkg' / 'early.stopped').read_text())
    assert late > early
    assert [c.proc.returncode for c in sup.children] == [0, 0]


def test_children_stop_on_sigint_even_when_the_launcher_started_with_it_ignored(tmp_path):
    # A script's background job (`sage launch nano &`) starts with SIGINT ignored, and
    # children inherit that; the supervisor must hand its nodes the default back.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sup = _supervisor(tmp_path, ['steady'])
        sup.start()
    finally:
        signal.signal(signal.SIGINT, old)
    _wait_ready(sup.children[0])
    assert sup.stop() == []
    assert sup.children[0].proc.returncode == 0


def test_a_late_node_waits_in_its_own_process_then_becomes_the_node(tmp_path):
    # 'steady' starts 0.8 s late (memory's start_delay_s), 'calm' (the same program) at once
    PROGRAMS['calm'] = PROGRAMS['steady']
    sup = _supervisor(tmp_path, ['steady', 'calm'])
    object.__setattr__(sup.children[0].spec, 'start_delay_s', 0.8)
    started = time.monotonic()
    sup.start()
    try:
        late, calm = sup.children
        assert sup.command(late)[1:5] == ['-m', 'sage_bringup.start_later', '0.8', '--']
        assert sup.command(calm)[1:3] == ['-m', 'fakepkg.calm']
        pid = late.proc.pid
        _wait_ready(late)
        assert time.monotonic() - started >= 0.8
        assert late.proc.pid == pid and late.proc.poll() is None  # the same process, running
        _wait_ready(calm)
    finally:
        assert sup.stop() == []
    assert [c.proc.returncode for c in sup.children] == [0, 0]


def test_a_late_node_stopped_while_it_waits_exits_cleanly_and_never_runs(tmp_path):
    sup = _supervisor(tmp_path, ['steady'])
    object.__setattr__(sup.children[0].spec, 'start_delay_s', 30.0)
    sup.start()
    time.sleep(0.3)
    assert sup.stop() == []
    assert sup.children[0].proc.returncode == 0
    assert b'ready' not in sup.children[0].log_path.read_bytes()
