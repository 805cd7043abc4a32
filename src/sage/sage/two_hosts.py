"""Two hosts on one machine, for tests and `sage bench twohost`: two network namespaces joined
by a veth pair (10.201.N.1 and .2/30, no other address, no route out), as root with iproute2.

The edge side shares this machine's /dev/shm (a probe run beside it may use shared memory, as
on the robot); commands on the assist side get a private /dev/shm (`unshare --mount`), so
DDS between the sides can only go over the link. Packet loss on the link uses iptables'
statistic match. Delay needs the kernel's netem qdisc (`tc qdisc ... netem`): `delay()` says
so when the kernel lacks it.
"""
from __future__ import annotations

import os
import shutil
import subprocess

EDGE, ASSIST = 'edge', 'assist'


class RigError(RuntimeError):
    """The namespaces or the link could not be set up (message says what is missing)."""


def available() -> str | None:
    """None when this machine can build the rig, else why not."""
    if os.geteuid() != 0:
        return 'needs root (network namespaces)'
    missing = [t for t in ('ip', 'unshare', 'iptables') if not shutil.which(t)]
    return f"needs {', '.join(missing)} (iproute2, util-linux, iptables)" if missing else None


def _run(*cmd: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RigError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


class TwoHosts:
    """The two namespaces; use as a context manager (they are removed on exit)."""

    def __init__(self, tag: int | None = None, private_shm: bool = True) -> None:
        self.private_shm = private_shm
        tag = os.getpid() % 10000 if tag is None else tag
        self.net = 1 + tag % 250
        self.ns = {EDGE: f'sage{tag}e', ASSIST: f'sage{tag}a'}
        self.dev = {EDGE: f'sg{tag}e', ASSIST: f'sg{tag}a'}
        self.addr = {EDGE: f'10.201.{self.net}.1', ASSIST: f'10.201.{self.net}.2'}

    def __enter__(self) -> TwoHosts:
        why = available()
        if why:
            raise RigError(why)
        try:
            for ns in self.ns.values():
                _run('ip', 'netns', 'add', ns)
            _run('ip', 'link', 'add', self.dev[EDGE], 'type', 'veth', 'peer', 'name',
                 self.dev[ASSIST])
            for side, ns in self.ns.items():
                dev = self.dev[side]
                _run('ip', 'link', 'set', dev, 'netns', ns)
                _run('ip', '-n', ns, 'addr', 'add', f'{self.addr[side]}/30', 'dev', dev)
                _run('ip', '-n', ns, 'link', 'set', dev, 'up')
                _run('ip', '-n', ns, 'link', 'set', 'lo', 'up')
                # DDS discovery is multicast; a namespace has no default route to send it by
                _run('ip', '-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', dev)
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for ns in self.ns.values():  # deleting a namespace deletes its end of the veth pair
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True, timeout=30,
                           check=False)

    def command(self, side: str, cmd: list[str]) -> list[str]:
        """`cmd` as run on one side (the assist side with its own /dev/shm)."""
        if side == ASSIST and self.private_shm:
            cmd = ['unshare', '--mount', 'sh', '-c',
                   'mount -t tmpfs sage-assist-shm /dev/shm && exec "$@"', 'assist', *cmd]
        return ['ip', 'netns', 'exec', self.ns[side], *cmd]

    def link(self, up: bool) -> None:
        """Cut (False) or restore (True) the link, as a pulled cable would."""
        for side, ns in self.ns.items():
            _run('ip', '-n', ns, 'link', 'set', self.dev[side], 'up' if up else 'down')
        if up:  # a link brought back up has lost its multicast route
            for side, ns in self.ns.items():
                subprocess.run(['ip', '-n', ns, 'route', 'replace', '224.0.0.0/4', 'dev',
                                self.dev[side]], capture_output=True, timeout=30, check=False)

    def loss(self, percent: float) -> None:
        """Drop this share of the packets each side receives (0 removes the rule)."""
        for side, ns in self.ns.items():
            _run('ip', 'netns', 'exec', ns, 'iptables', '-F', 'INPUT')
            if percent > 0:
                _run('ip', 'netns', 'exec', ns, 'iptables', '-A', 'INPUT', '-i', self.dev[side],
                     '-m', 'statistic', '--mode', 'random', '--probability',
                     f'{percent / 100.0:.4f}', '-j', 'DROP')

    def delay(self, ms: float) -> None:
        """Delay every packet leaving each side by `ms` (netem).

        Raises:
            RigError: the kernel has no netem qdisc.
        """
        for side, ns in self.ns.items():
            if ms <= 0:
                subprocess.run(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev',
                                self.dev[side], 'root'], capture_output=True, timeout=30,
                               check=False)
                continue
            try:
                _run('ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', self.dev[side],
                     'root', 'netem', 'delay', f'{ms}ms')
            except RigError as err:
                raise RigError(f'cannot delay the link by {ms} ms: {err} (this kernel has no '
                               'netem qdisc: CONFIG_NET_SCH_NETEM)') from err
