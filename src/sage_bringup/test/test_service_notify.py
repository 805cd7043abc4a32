"""`sage launch` as a systemd notify service: READY=1, watchdog pings, a hung node stops them.

The test plays systemd: it binds the unix datagram socket named by $NOTIFY_SOCKET, sets
$WATCHDOG_USEC and runs a real `sage launch nano` as a subprocess.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from sage_bringup.profile import load_profile

pytestmark = pytest.mark.graph

WATCHDOG_S = 20.0
READY_DEADLINE_S = 240.0  # processes starting on a shared 2-core machine
# The launcher's gate reads each node's /diagnostics, whatever the node does: the graph runs
# without the camera, microphone and encoders (four fifths of the full graph's CPU, which the
# other test worker needs more).
WITHOUT = ('camera', 'microphone', 'vision_encoder', 'audio_encoder', 'language_encoder', 'viz',
           'foxglove', 'frames')


class FakeSystemd:
    """Receives sd_notify datagrams on an abstract unix socket; records (time, fields)."""

    def __init__(self) -> None:
        self.address = f'@sage-test-notify-{os.getpid()}-{time.monotonic_ns()}'
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind('\0' + self.address[1:])
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split('=', 1) for line in data.decode().splitlines() if line)
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def times(self, key: str, value: str | None = None, after: float = 0.0) -> list[float]:
        with self.lock:
            return [t for t, f in self.messages if key in f and t >= after
                    and (value is None or f[key] == value)]

    def statuses(self, after: float = 0.0) -> list[str]:
        with self.lock:
            return [f['STATUS'] for t, f in self.messages if 'STATUS' in f and t >= after]

    def wait_for(self, key: str, value: str | None, after: float, deadline_s: float,
                 count: int = 1) -> list[float]:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            found = self.times(key, value, after)
            if len(found) >= count:
                return found
            time.sleep(0.2)
        return self.times(key, value, after)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _node_process(launcher: psutil.Process, name: str) -> psutil.Process:
    for child in launcher.children(recursive=True):
        try:
            if f'__node:={name}' in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f'no process for node {name}')


def test_launch_notifies_ready_pings_watchdog_and_a_hung_node_stops_the_pings(
        ros_domain, tmp_path):
    systemd = FakeSystemd()
    env = dict(os.environ, NOTIFY_SOCKET=systemd.address,
               WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)))
    # one process per node, so that one node can hang alone
    cmd = [sys.executable, '-m', 'sage.cli', 'launch', 'nano', '--no-compose', '--quiet',
           '--without', ','.join(WITHOUT),
           '--domain-id', str(ros_domain), '--run-dir', str(tmp_path / 'run'),
           '--set', f'memory.data_dir={tmp_path / "data"}',
           '--set', f'snarc.state_file={tmp_path / "state" / "snarc.npz"}',
           '--set', f'orchestrator.state_dir={tmp_path / "state"}']
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
    launcher = psutil.Process(proc.pid)
    victim = None
    n_nodes = len(load_profile('nano').without(WITHOUT).nodes)
    assert n_nodes == 4  # imu, snarc, orchestrator, memory
    try:
        started = time.monotonic()
        ready = systemd.wait_for('READY', '1', started, READY_DEADLINE_S)
        assert ready, 'no READY=1 from sage launch:\n' + ''.join(output)
        t_ready = ready[0]
        assert f'{n_nodes} nodes up' in systemd.statuses(), systemd.statuses()
        assert not systemd.times('WATCHDOG', after=0.0) or \
            min(systemd.times('WATCHDOG')) >= t_ready, 'pinged before READY'

        # Healthy: pings keep coming, never further apart than WatchdogSec.
        pings = systemd.wait_for('WATCHDOG', '1', t_ready, WATCHDOG_S * 2, count=3)
        assert len(pings) >= 3, f'{len(pings)} pings after READY:\n' + ''.join(output)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < WATCHDOG_S, gaps

        # A hung node: SIGSTOP snarc; the pings must stop within WatchdogSec.
        victim = _node_process(launcher, 'snarc')
        victim.suspend()
        t_stop = time.monotonic()
        time.sleep(WATCHDOG_S * 1.5)
        after_stop = systemd.times('WATCHDOG', '1', t_stop)
        late = [round(t - t_stop, 1) for t in after_stop if t - t_stop >= WATCHDOG_S]
        assert not late, f'pings {late} s after SIGSTOP (WatchdogSec {WATCHDOG_S})'
        assert any('snarc' in s for s in systemd.statuses(t_stop)), systemd.statuses(t_stop)

        # It wakes up: the pings come back, then a clean stop.
        victim.resume()
        t_cont = time.monotonic()
        resumed = systemd.wait_for('WATCHDOG', '1', t_cont, WATCHDOG_S * 2)
        assert resumed, 'no pings after SIGCONT:\n' + ''.join(output)
        assert 'healthy' in systemd.statuses(t_cont)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, ''.join(output)
        assert systemd.times('STOPPING', '1'), systemd.messages[-3:]
        last = max(after_stop, default=t_stop)
        print(f'READY {t_ready - started:.1f} s after start; ping gaps {min(gaps):.1f}-'
              f'{max(gaps):.1f} s; last ping {last - t_stop:.1f} s after SIGSTOP; pings back '
              f'{resumed[0] - t_cont:.1f} s after SIGCONT')
    finally:
        if victim is not None:
            try:
                victim.resume()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        systemd.close()
