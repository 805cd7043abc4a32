"""`sage service install|uninstall`: the unit systemd gets, checked by systemd-analyze verify."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from sage_bringup.profile import load_profile
from sage_bringup.service import default_user


def _sage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, '-m', 'sage.cli', *args], capture_output=True,
                          text=True, timeout=120, check=False)


def _keys(text: str) -> dict[str, str]:
    return dict(line.split('=', 1) for line in text.splitlines()
                if '=' in line and not line.startswith('#'))


def test_install_writes_a_notify_unit_with_watchdog_rtprio_and_env_file(tmp_path):
    env_file = tmp_path / 'default' / 'sage'
    proc = _sage('service', 'install', '--profile', 'nano', '--unit-dir', str(tmp_path),
                 '--env-file', str(env_file), '--domain-id', '17')
    assert proc.returncode == 0, proc.stderr
    unit = _keys((tmp_path / 'sage.service').read_text())
    nano = load_profile('nano')
    assert unit['Type'] == 'notify' and unit['NotifyAccess'] == 'main'
    assert float(unit['WatchdogSec']) == nano.settings['watchdog_s']
    assert float(unit['TimeoutStartSec']) == nano.settings['start_timeout_s']
    assert unit['Restart'] == 'on-failure'
    assert float(unit['RestartSec']) == nano.settings['restart_s']
    assert int(unit['LimitRTPRIO']) == max(int(n.parameters['capture_priority'])
                                           for n in nano.nodes
                                           if 'capture_priority' in n.parameters) > 0
    assert unit['EnvironmentFile'] == str(env_file)
    assert unit['ExecStart'] == f'{sys.executable} -m sage.cli launch ${{SAGE_PROFILE}} --quiet'
    assert unit['User'] == default_user()
    assert unit['StandardOutput'] == 'journal' and unit['UMask'] == '0077'
    env = _keys(env_file.read_text())
    assert env['SAGE_PROFILE'] == 'nano' and env['ROS_DOMAIN_ID'] == '17'


@pytest.mark.skipif(shutil.which('systemd-analyze') is None,
                    reason='systemd-analyze missing (scripts/install.sh installs systemd)')
def test_generated_unit_passes_systemd_analyze_verify_and_a_broken_one_does_not(tmp_path):
    env_file = tmp_path / 'sage.env'
    assert _sage('service', 'install', '--unit-dir', str(tmp_path),
                 '--env-file', str(env_file)).returncode == 0
    unit = tmp_path / 'sage.service'
    ok = subprocess.run(['systemd-analyze', 'verify', str(unit)], capture_output=True,
                        text=True, timeout=60, check=False)
    # verify exits 0 on unknown keys and bad values too: a clean unit prints nothing.
    assert ok.returncode == 0 and ok.stdout.strip() == '' and ok.stderr.strip() == '', (
        ok.stdout + ok.stderr)
    broken = tmp_path / 'broken.service'
    broken.write_text(unit.read_text().replace('Type=notify', 'Type=notifyx'))
    bad = subprocess.run(['systemd-analyze', 'verify', str(broken)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert 'notifyx' in bad.stderr


def test_uninstall_removes_both_files_and_a_second_time_removes_nothing(tmp_path):
    env_file = tmp_path / 'sage.env'
    assert _sage('service', 'install', '--unit-dir', str(tmp_path),
                 '--env-file', str(env_file)).returncode == 0
    proc = _sage('service', 'uninstall', '--unit-dir', str(tmp_path), '--env-file',
                 str(env_file))
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / 'sage.service').exists() and not env_file.exists()
    again = _sage('service', 'uninstall', '--unit-dir', str(tmp_path), '--env-file',
                  str(env_file))
    assert 'nothing' in again.stdout


def test_install_refuses_a_watchdog_shorter_than_the_nodes_diagnostics(tmp_path):
    profile = tmp_path / 'short.yaml'
    text = (load_profile('nano').path.read_text()
            .replace('watchdog_s: 30.0', 'watchdog_s: 2.0'))
    profile.write_text(text)
    proc = _sage('service', 'install', '--profile', str(profile), '--unit-dir', str(tmp_path),
                 '--env-file', str(tmp_path / 'env'))
    assert proc.returncode == 2
    assert 'launch.watchdog_s=2' in proc.stderr and 'camera (1 s)' in proc.stderr
    assert not (tmp_path / 'sage.service').exists()
