"""sd_notify client over a real unix datagram socket, and the health gate's verdicts."""
from __future__ import annotations

import os
import socket

import pytest

from sage_bringup.health_gate import HealthGate, node_of_status
from sage_bringup.sd_notify import Notifier, watchdog_seconds


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


@pytest.mark.parametrize('abstract', [False, True])
def test_notifier_sends_one_datagram_of_key_value_lines(tmp_path, abstract):
    if abstract:
        name = f'@sage-sdn-{os.getpid()}'
        sock = _receiver('\0' + name[1:])
    else:
        name = str(tmp_path / 'notify')
        sock = _receiver(name)
    notifier = Notifier({'NOTIFY_SOCKET': name})
    try:
        assert notifier.ready('10 nodes up')
        assert sock.recv(256) == b'READY=1\nSTATUS=10 nodes up'
        assert notifier.watchdog()
        assert sock.recv(256) == b'WATCHDOG=1'
    finally:
        notifier.close()
        sock.close()


def test_notifier_outside_systemd_does_nothing():
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready('x')
    assert notifier.watchdog_s is None


def test_watchdog_seconds_only_for_this_process():
    assert watchdog_seconds({'WATCHDOG_USEC': '20000000'}) == 20.0
    assert watchdog_seconds({'WATCHDOG_USEC': '20000000',
                             'WATCHDOG_PID': str(os.getpid())}) == 20.0
    assert watchdog_seconds({'WATCHDOG_USEC': '20000000', 'WATCHDOG_PID': '1'}) is None
    assert watchdog_seconds({'WATCHDOG_USEC': '0'}) is None


def test_gate_is_ready_when_every_node_was_heard_and_unhealthy_when_one_goes_quiet():
    gate = HealthGate(frozenset({'camera', 'snarc'}), stale_after_s=10.0)
    gate.heard('camera', 0.0)
    gate.heard('rqt', 0.0)  # not a graph node: ignored
    assert not gate.ready() and gate.missing() == ['snarc']
    gate.heard('snarc', 1.0)
    assert gate.ready() and gate.healthy(10.0)
    gate.heard('camera', 9.0)
    assert gate.stale(11.5) == ['snarc'] and not gate.healthy(11.5)
    gate.heard('snarc', 12.0)
    assert gate.healthy(12.0)


def test_status_names_map_to_nodes():
    assert node_of_status('sage: snarc') == 'snarc'
    assert node_of_status('camera_driver: status') is None
