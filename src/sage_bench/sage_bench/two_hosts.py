"""Two hosts on one machine, for tests and `sage bench twohost`: two network namespaces, each
with one point-to-point TUN interface (10.202.N.1 and .2, no other address, no route out),
joined by a relay thread in this process that plays the cable between them.

The relay is the link emulator: it adds a one-way delay per direction, drops a share of the
packets, or drops them all (a cut link), and counts what crossed. It replaces `tc netem`, which
kernels without the netem qdisc (CONFIG_NET_SCH_NETEM, as on the machines here) lack. Root and
iproute2 are needed.

The edge side shares this machine's /dev/shm (a probe run beside it may use shared memory, as
on the robot); commands on the assist side get a private /dev/shm (`unshare --mount`), so DDS
between the sides can only go over the link.
"""
from __future__ import annotations

from collections import Counter
import fcntl
import heapq
import itertools
import os
import random
import select
import shutil
import struct
import subprocess
import threading
import time

from sage_bench.rtps_traffic import Fragments, count_packet

EDGE, ASSIST = 'edge', 'assist'
_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000


class RigError(RuntimeError):
    """The namespaces or the link could not be set up (message says what is missing)."""


def available() -> str | None:
    """None when this machine can build the rig, else why not."""
    if os.geteuid() != 0:
        return 'needs root (network namespaces)'
    missing = [t for t in ('ip', 'unshare') if not shutil.which(t)]
    if missing:
        return f"needs {', '.join(missing)} (iproute2, util-linux)"
    if not os.path.exists('/dev/net/tun'):
        return 'needs /dev/net/tun (the link between the namespaces is a TUN pair)'
    return None


def _run(*cmd: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RigError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _tun(name: str) -> int:
    fd = os.open('/dev/net/tun', os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack('16sH', name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


class _Relay(threading.Thread):
    """Moves IP packets between the two TUN interfaces with delay, loss or a cut."""

    def __init__(self, fds: tuple[int, int], seed: int = 0) -> None:
        super().__init__(daemon=True, name='two-hosts-link')
        self.fds = fds
        self.delay_s = 0.0
        self.loss = 0.0
        self.up = True
        self.counts = {'packets': 0, 'bytes': 0, 'dropped': 0}
        self.writers: Counter = Counter()  # delivered bytes per DDS writer (rtps_traffic)
        self.samples: Counter = Counter()
        self._fragments = Fragments()
        self._rng = random.Random(seed)
        self._queue: list[tuple[float, int, int, bytes]] = []
        self._order = itertools.count()
        self._halt = threading.Event()
        # Held while a packet is checked against `up` and delivered, and while `up` changes:
        # once set_up(False) returns, nothing more crosses (no packet caught between the two).
        self.lock = threading.Lock()

    def set_up(self, up: bool) -> None:
        with self.lock:
            self.up = up

    def run(self) -> None:
        a, b = self.fds
        while not self._halt.is_set():
            wait = 0.05 if not self._queue else max(0.0, self._queue[0][0] - time.monotonic())
            try:
                ready, _, _ = select.select([a, b], [], [], min(wait, 0.05))
            except (OSError, ValueError):
                return
            now = time.monotonic()
            for fd in ready:
                try:
                    packet = os.read(fd, 65536)
                except OSError:
                    return
                if not self.up or (self.loss > 0 and self._rng.random() < self.loss):
                    self.counts['dropped'] += 1
                    continue
                heapq.heappush(self._queue,
                               (now + self.delay_s, next(self._order), b if fd == a else a,
                                packet))
            while self._queue and self._queue[0][0] <= time.monotonic():
                _, _, dst, packet = heapq.heappop(self._queue)
                with self.lock:
                    if not self.up:  # in flight when the cable was pulled: lost, not delivered
                        self.counts['dropped'] += 1
                        continue
                    try:
                        os.write(dst, packet)
                    except OSError:
                        continue  # the namespace is going away
                    self.counts['packets'] += 1
                    self.counts['bytes'] += len(packet)
                count_packet(packet, self.writers, self.samples, self._fragments)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class TwoHosts:
    """The two namespaces and their link; use as a context manager (removed on exit)."""

    def __init__(self, tag: int | None = None) -> None:
        tag = os.getpid() % 10000 if tag is None else tag
        self.net = 1 + tag % 250
        self.ns = {EDGE: f'sage{tag}e', ASSIST: f'sage{tag}a'}
        self.dev = {EDGE: f'sgt{tag}e', ASSIST: f'sgt{tag}a'}
        self.addr = {EDGE: f'10.202.{self.net}.1', ASSIST: f'10.202.{self.net}.2'}
        self._relay: _Relay | None = None

    def __enter__(self) -> TwoHosts:
        why = available()
        if why:
            raise RigError(why)
        fds: list[int] = []
        try:
            for side, ns in self.ns.items():
                _run('ip', 'netns', 'add', ns)
                fds.append(_tun(self.dev[side]))
                peer = self.addr[ASSIST if side == EDGE else EDGE]
                dev = self.dev[side]
                _run('ip', 'link', 'set', dev, 'netns', ns)
                _run('ip', '-n', ns, 'addr', 'add', self.addr[side], 'peer', peer, 'dev', dev)
                _run('ip', '-n', ns, 'link', 'set', dev, 'multicast', 'on')
                _run('ip', '-n', ns, 'link', 'set', dev, 'up')
                _run('ip', '-n', ns, 'link', 'set', 'lo', 'up')
                # DDS discovery is multicast; a namespace has no default route to send it by
                _run('ip', '-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', dev)
        except Exception:
            for fd in fds:
                os.close(fd)
            self._remove()
            raise
        self._relay = _Relay((fds[0], fds[1]))
        self._relay.start()
        return self

    def _remove(self) -> None:
        for ns in self.ns.values():
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True, timeout=30,
                           check=False)

    def __exit__(self, *exc) -> None:
        if self._relay is not None:
            self._relay.stop()
            for fd in self._relay.fds:
                os.close(fd)
            self._relay = None
        self._remove()

    def command(self, side: str, cmd: list[str]) -> list[str]:
        """`cmd` as run on one side (the assist side with its own /dev/shm)."""
        if side == ASSIST:
            cmd = ['unshare', '--mount', 'sh', '-c',
                   'mount -t tmpfs sage-assist-shm /dev/shm && exec "$@"', 'assist', *cmd]
        return ['ip', 'netns', 'exec', self.ns[side], *cmd]

    def _link(self) -> _Relay:
        if self._relay is None:
            raise RigError('the two hosts are not set up (use TwoHosts as a context manager)')
        return self._relay

    def link(self, up: bool) -> None:
        """Cut (False) or restore (True) the link, as a pulled cable would."""
        self._link().set_up(bool(up))

    def loss(self, percent: float) -> None:
        """Drop this share of the packets crossing, each way (0: none)."""
        self._link().loss = max(0.0, min(percent, 100.0)) / 100.0

    def delay(self, ms: float) -> None:
        """Delay every packet by `ms`, each way (as netem on both ends would)."""
        self._link().delay_s = max(0.0, ms) / 1000.0

    def counts(self) -> dict[str, int]:
        """Packets and bytes delivered across the link so far, and packets dropped."""
        relay = self._link()
        with relay.lock:
            return dict(relay.counts)

    def traffic(self) -> tuple[Counter, Counter]:
        """Bytes delivered so far per DDS writer (or label) and samples per writer."""
        relay = self._link()
        return Counter(relay.writers), Counter(relay.samples)
