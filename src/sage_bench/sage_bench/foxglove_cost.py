"""`sage bench graph --foxglove`: what the Foxglove live view costs the graph.

In one run of the graph, phases alternate: the live view off (the foxglove node's `enabled`
parameter false: no server, no subscriptions) and on with one client subscribed to every
channel (sage_bench.foxglove_client, as Foxglove with every panel of the layout open). Each
phase measures the CPU time of every graph process over the same length of time; the order
flips every pair, so a drift of the machine's load falls on both sides. The client runs in
this process and is not counted: on a robot it is the laptop.
"""
from __future__ import annotations

from collections.abc import Mapping
import socket
import statistics
import time
from typing import Any

import psutil

from sage_bench.foxglove_client import LiveViewClient
from sage_common.vocabulary import LiveView

NODE = 'foxglove'
SETTLE_S = 1.0  # after a switch, before a phase is measured


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def _cpu_s(procs: Mapping[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, p in procs.items():
        try:
            t = p.cpu_times()
            out[name] = t.user + t.system
        except psutil.NoSuchProcess:
            out[name] = float('nan')
    return out


def _set_enabled(node: Any, value: bool, timeout_s: float = 10.0) -> None:
    """Set the foxglove node's `enabled` through its parameter service.

    Raises:
        RuntimeError: no answer, or the node refused.
    """
    # lazy: keeps ROS out of this module's import
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    client = node.create_client(SetParameters, f'/{NODE}/set_parameters')
    try:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise RuntimeError(f'/{NODE}/set_parameters is not offered')
        future = client.call_async(SetParameters.Request(
            parameters=[Parameter('enabled', value=value).to_parameter_msg()]))
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)  # the probe's executor thread completes it
        if not future.done() or not future.result().results[0].successful:
            raise RuntimeError(f'{NODE}.enabled={value} was not accepted')
    finally:
        node.destroy_client(client)


def _port_closed(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) != 0:
                return True
        time.sleep(0.1)
    return False


def _phase(kind: str, procs: Mapping[str, psutil.Process], host: str, phase_s: float,
           client: LiveViewClient | None) -> dict[str, Any]:
    time.sleep(SETTLE_S)
    if client is not None:
        client.reset_counts()
    before, t0 = _cpu_s(procs), time.monotonic()
    time.sleep(phase_s)
    after, t1 = _cpu_s(procs), time.monotonic()
    wall = t1 - t0
    per = {n: 100.0 * (after[n] - before[n]) / wall for n in procs}
    out: dict[str, Any] = {'kind': kind, 'seconds': wall,
                           'graph_cpu_percent': sum(per.values()),
                           'host_process': host, 'host_cpu_percent': per.get(host)}
    if client is not None:
        got = client.by_topic()
        out['messages'] = sum(st.count for _, st in got.values())
        out['bytes'] = sum(st.bytes for _, st in got.values())
        out['channels_delivering'] = sum(1 for _, st in got.values() if st.count)
        out['channels'] = len(got)
        camera = got.get(LiveView.CAMERA)
        out['camera_hz'] = camera[1].rate_hz(t0, t1) if camera else 0.0
    return out


def measure(node: Any, procs: Mapping[str, psutil.Process], host: str, port: int,
            phase_s: float = 10.0, pairs: int = 3) -> dict[str, Any]:
    """Alternate `pairs` pairs of phases (off / on with one client), `phase_s` each.

    node: an rclpy node on the graph's domain, spun by a thread of the caller (the bench
    probe's), to call the foxglove node's parameter service.
    host: the name of the process that runs the foxglove node (a compose group or itself).
    """
    phases = []
    try:
        for pair in range(pairs):
            for kind in (('off', 'client') if pair % 2 == 0 else ('client', 'off')):
                if kind == 'off':
                    _set_enabled(node, False)
                    if not _port_closed(port, 10.0):
                        raise RuntimeError(f'the live view still listens on {port}')
                    phases.append(_phase('off', procs, host, phase_s, None))
                    continue
                _set_enabled(node, True)
                with LiveViewClient(f'ws://127.0.0.1:{port}', keep=0).start(30.0) as client:
                    # subscribed and the camera flowing: the viewer is set up
                    client.wait_for(lambda c: any(
                        ch['topic'] == LiveView.CAMERA and c.stats.get(i, None) is not None
                        for i, ch in c.channels.items()), 30.0)
                    phases.append(_phase('client', procs, host, phase_s, client))
    finally:
        _set_enabled(node, True)  # as the profile runs it
    off = [p['graph_cpu_percent'] for p in phases if p['kind'] == 'off']
    on = [p['graph_cpu_percent'] for p in phases if p['kind'] == 'client']
    host_off = [p['host_cpu_percent'] for p in phases if p['kind'] == 'off']
    host_on = [p['host_cpu_percent'] for p in phases if p['kind'] == 'client']
    clients = [p for p in phases if p['kind'] == 'client']
    return {
        'what': 'CPU % of one core, every graph process summed, live view off (enabled: '
                'false) against on with one client subscribed to every channel; phases '
                'alternate in one run',
        'phase_s': phase_s, 'pairs': pairs, 'port': port, 'phases': phases,
        'graph_cpu_percent': {'off': statistics.median(off),
                              'client': statistics.median(on)},
        'cost_cpu_percent': statistics.median(on) - statistics.median(off),
        'cost_per_pair': [b - a for a, b in zip(off, on)],
        'host_process': host,
        'host_cpu_percent': {'off': statistics.median(host_off),
                             'client': statistics.median(host_on)},
        'client_messages_per_s': statistics.median(p['messages'] / p['seconds']
                                                   for p in clients),
        'client_kbytes_per_s': statistics.median(p['bytes'] / p['seconds'] / 1e3
                                                 for p in clients),
        'camera_hz': statistics.median(p['camera_hz'] for p in clients),
    }
