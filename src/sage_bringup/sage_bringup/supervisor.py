"""Process supervision for `sage launch`: start nodes, respawn crashes, stop cleanly.

Each node runs as its own process (`python -m <package>.<executable> --ros-args ...`), or with
the nodes of its composition group in one (`python -m sage_bringup.compose GROUP.yaml`), with its
log in
the run folder; each distinct ERROR a node logs is also shown on the console once.
No rclpy here: the supervisor must keep working when DDS or a node misbehaves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from sage_bringup.log_errors import ErrorLines
from sage_bringup import start_later
from sage_bringup.node_groups import (COMPOSE_MODULE, NodeGroup, Process, write_group_spec,
                                      write_params_file)
from sage_common.processes import die_with_parent

# Exit code a node uses for a configuration error (sage_common.ros.run): never respawned.
CONFIG_ERROR_EXIT = 2


@dataclass
class SupervisorConfig:
    """Respawn and shutdown policy (from the profile's `launch:` section)."""

    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    # A child that stayed up this long is considered healthy again (backoff resets).
    healthy_after_s: float = 10.0
    max_consecutive_failures: int = 10
    grace_s: float = 3.0


@dataclass
class Child:
    spec: Process
    log_path: Path
    params_path: Path
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0
    next_start: float = 0.0
    gave_up: bool = False
    exit_codes: list[int] = field(default_factory=list)
    errors: ErrorLines = field(init=False)

    def __post_init__(self) -> None:
        self.errors = ErrorLines(self.log_path)


def _child_setup() -> None:
    """Runs in each child before exec: default SIGINT/SIGTERM, and die with the launcher.

    A launcher started as a background job of a script (`sage launch nano &`) inherits
    SIGINT ignored, and a Python child that starts with SIGINT ignored never raises
    KeyboardInterrupt, so it could not stop cleanly.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    die_with_parent()


class Supervisor:
    """Starts and watches one process per node or composition group."""

    def __init__(self, nodes: tuple[Process, ...], run_dir: Path, env: dict[str, str],
                 config: SupervisorConfig | None = None, python: str = sys.executable,
                 log=print, ros_args: list[str] | tuple[str, ...] = ()) -> None:
        self.run_dir = run_dir
        # the graph's namespace and log level (profile.ros_args), for every process
        self.ros_args = list(ros_args)
        self.env = env
        self.config = config or SupervisorConfig()
        self.python = python
        self.log = log
        (run_dir / 'logs').mkdir(parents=True, exist_ok=True)
        (run_dir / 'params').mkdir(parents=True, exist_ok=True)
        # a group's file is its node list; 'group_' keeps it apart from a node of that name
        self.children = [Child(spec, run_dir / 'logs' / f'{spec.name}.log',
                               run_dir / 'params' / (f'group_{spec.name}.yaml'
                                                     if isinstance(spec, NodeGroup)
                                                     else f'{spec.name}.yaml'))
                         for spec in nodes]
        self.config_error: str | None = None

    def command(self, child: Child) -> list[str]:
        spec = child.spec
        later = start_later.prefix(spec.start_delay_s, self.python)
        if isinstance(spec, NodeGroup):
            return [*later, self.python, '-m', COMPOSE_MODULE, str(child.params_path)]
        cmd = [*later, self.python, '-m', spec.module, '--ros-args', '-r',
               f'__node:={spec.name}', '--params-file', str(child.params_path)]
        for src, dst in spec.remappings:
            cmd += ['-r', f'{src}:={dst}']
        return cmd + self.ros_args

    def write_params(self) -> None:
        """Write each node's --params-file (its profile section after overrides), and each
        group's node list for sage_bringup.compose (a group's params_path)."""
        for child in self.children:
            if isinstance(child.spec, NodeGroup):
                write_group_spec(child.spec, child.params_path.parent, child.params_path,
                                 self.ros_args)
            else:
                write_params_file(child.spec, child.params_path.parent)

    def start(self) -> None:
        self.write_params()
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        with open(child.log_path, 'ab') as log:
            log.write(f'--- start {time.strftime("%H:%M:%S")} '
                      f'(restart {child.restarts}) ---\n'.encode())
            log.flush()
            child.proc = subprocess.Popen(
                self.command(child), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
                preexec_fn=_child_setup)
        child.started_at = time.monotonic()

    def pids(self) -> dict[str, int]:
        return {c.spec.name: c.proc.pid for c in self.children
                if c.proc is not None and c.proc.poll() is None}

    def poll(self) -> None:
        """Show new node ERRORs, reap exited children and respawn them with backoff."""
        now = time.monotonic()
        cfg = self.config
        for child in self.children:
            for message in child.errors.new():
                self.log(f'[sage] {child.spec.name} ERROR: {message}')
            if child.gave_up:
                continue
            if child.proc is None:
                if now >= child.next_start:
                    child.restarts += 1
                    self.log(f'[sage] respawning {child.spec.name} '
                             f'(restart {child.restarts})')
                    self._spawn(child)
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started_at > cfg.healthy_after_s:
                    child.failures = 0
                continue
            child.exit_codes.append(code)
            child.proc = None
            if code == CONFIG_ERROR_EXIT:
                child.gave_up = True
                self.config_error = (f'{child.spec.name} refused its configuration: '
                                     f'{last_error_line(child.log_path)}')
                self.log(f'[sage] ERROR: {self.config_error}')
                continue
            if not child.spec.respawn:
                child.gave_up = True
                self.log(f'[sage] {child.spec.name} exited with {describe(code)} '
                         '(respawn off)')
                continue
            child.failures += 1
            if child.failures > cfg.max_consecutive_failures:
                child.gave_up = True
                self.log(f'[sage] ERROR: {child.spec.name} failed {child.failures - 1} times '
                         f'in a row; giving up (see {child.log_path})')
                continue
            delay = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (child.failures - 1))
            child.next_start = now + delay
            self.log(f'[sage] {child.spec.name} exited with {describe(code)}; '
                     f'respawn in {delay:.1f} s')

    def stop(self) -> list[str]:
        """SIGINT every child, wait up to grace_s, then SIGKILL; returns the killed names.

        Nodes marked stop_last are stopped in a second wave, once the others are gone.
        """
        killed = []
        for last in (False, True):
            wave = [c for c in self.children if c.spec.stop_last == last
                    and c.proc is not None and c.proc.poll() is None]
            killed += self._stop_wave(wave)
        return killed

    def _stop_wave(self, live: list[Child]) -> list[str]:
        for child in live:
            _signal(child.proc, signal.SIGINT)
        deadline = time.monotonic() + self.config.grace_s
        for child in live:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                child.proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                pass
        killed = []
        for child in live:
            if child.proc.poll() is None:
                _signal(child.proc, signal.SIGKILL)
                child.proc.wait()
                killed.append(child.spec.name)
        return killed

    @property
    def failed(self) -> list[str]:
        return [c.spec.name for c in self.children if c.gave_up]


def _signal(proc: subprocess.Popen, sig: int) -> None:
    """Signal the child's whole process group (a node may have helper processes)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def describe(code: int) -> str:
    if code < 0:
        return f'signal {signal.Signals(-code).name}'
    return f'code {code}'


def last_error_line(log_path: Path) -> str:
    """The last 'ERROR' line (or last line) of a node log, for one-line error reports."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors='replace').splitlines()
                 if ln.strip() and not ln.startswith('--- start')]
    except OSError:
        return '(no log)'
    for line in reversed(lines):
        if 'ERROR' in line:
            return line
    return lines[-1] if lines else '(empty log)'
