"""`sage service install|uninstall`: a systemd unit that starts SAGE at boot and watches it.

The unit runs `sage launch <profile> --quiet` as Type=notify: the launcher sends READY=1
once every node answers on /diagnostics and WATCHDOG=1 while all keep answering
(sage_bringup.service_watch), so systemd restarts a crashed or hung graph. Profile and domain
live in
an environment file, so changing them is an edit and a restart. Timeouts come from the
profile's `launch:` section.
"""
from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import pwd
import shutil
import subprocess
import sys

from sage_bringup.environment import resolve_domain
from sage_bringup.paths import repo_root
from sage_bringup.profile import Profile
from sage_common.errors import SageError

UNIT_NAME = 'sage.service'
DEFAULT_UNIT_DIR = Path('/etc/systemd/system')
DEFAULT_ENV_FILE = Path('/etc/default/sage')
# The launcher stops nodes in two waves (others, then memory), each SIGINT + grace_s; this
# leaves room for its own exit and summary before systemd would SIGKILL everything.
STOP_MARGIN_S = 10.0
# A node must miss at least this many /diagnostics periods before it counts as hung.
MIN_PERIODS_PER_STALE = 3
# Launch settings the unit uses, with the profile key each one comes from.
SETTING_KEYS = ('watchdog_s', 'start_timeout_s', 'restart_s', 'shutdown_grace_s')


class ServiceError(SageError):
    """The unit cannot be written or removed as asked."""


@dataclass(frozen=True)
class UnitConfig:
    """Everything the unit and its environment file say."""

    profile: str
    user: str
    domain_id: int
    python: str
    env_file: Path
    working_dir: Path
    watchdog_s: float
    start_timeout_s: float
    restart_s: float
    stop_timeout_s: float
    rtprio: int


def default_user() -> str:
    """The user who asked (through sudo too)."""
    return os.environ.get('SUDO_USER') or pwd.getpwuid(os.getuid()).pw_name


def unit_config(profile: Profile, user: str | None = None, domain_id: int | None = None,
                env_file: Path = DEFAULT_ENV_FILE, profile_arg: str | None = None) -> UnitConfig:
    """The unit for a loaded profile.

    Raises:
        ServiceError: unknown user, a missing launch setting, or a watchdog too short for
            the nodes' /diagnostics periods.
    """
    user = user or default_user()
    try:
        home = Path(pwd.getpwnam(user).pw_dir)
    except KeyError as err:
        raise ServiceError(f"--user: no user '{user}' on this machine") from err
    s = profile.settings
    missing = [k for k in SETTING_KEYS if k not in s]
    if missing:
        raise ServiceError(f'{profile.path}: launch section lacks {", ".join(missing)}')
    watchdog_s = float(s['watchdog_s'])
    periods = {n.name: float(n.parameters['diagnostics_period_s']) for n in profile.nodes
               if 'diagnostics_period_s' in n.parameters}
    slow = {n: p for n, p in periods.items()
            if p * MIN_PERIODS_PER_STALE > watchdog_s / 2}
    if slow:
        raise ServiceError(
            f'launch.watchdog_s={watchdog_s:g}: half of it must cover {MIN_PERIODS_PER_STALE} '
            f'/diagnostics periods of every node; too slow: '
            + ', '.join(f'{n} ({p:g} s)' for n, p in sorted(slow.items())))
    rtprio = max((int(n.parameters['capture_priority']) for n in profile.nodes
                  if 'capture_priority' in n.parameters), default=0)
    root = repo_root()
    return UnitConfig(
        profile=profile_arg or profile.name, user=user,
        domain_id=int(resolve_domain(profile, domain_id).value),  # the rule of every command
        python=sys.executable, env_file=env_file, working_dir=root or home,
        watchdog_s=watchdog_s, start_timeout_s=float(s['start_timeout_s']),
        restart_s=float(s['restart_s']),
        stop_timeout_s=2 * float(s['shutdown_grace_s']) + STOP_MARGIN_S, rtprio=rtprio)


def unit_text(cfg: UnitConfig) -> str:
    """The systemd unit."""
    rtprio = (f'# SCHED_FIFO capture threads (capture_priority) need this rtprio limit\n'
              f'LimitRTPRIO={cfg.rtprio}\n') if cfg.rtprio else ''
    return f"""\
# Written by `sage service install`; remove with `sage service uninstall`.
[Unit]
Description=SAGE attention kernel (profile from {cfg.env_file})
After=network.target

[Service]
Type=notify
# READY=1 and WATCHDOG=1 come from the launcher itself (not from its node processes)
NotifyAccess=main
EnvironmentFile={cfg.env_file}
ExecStart={cfg.python} -m sage.cli launch ${{SAGE_PROFILE}} --quiet
User={cfg.user}
WorkingDirectory={cfg.working_dir}
# Pings stop when a node is silent on /diagnostics for half of this: systemd restarts SAGE
WatchdogSec={cfg.watchdog_s:g}
TimeoutStartSec={cfg.start_timeout_s:g}
TimeoutStopSec={cfg.stop_timeout_s:g}
Restart=on-failure
RestartSec={cfg.restart_s:g}
# SIGTERM to the launcher only: it stops the nodes in order (memory last)
KillMode=mixed
StandardOutput=journal
StandardError=journal
SyslogIdentifier=sage
{rtprio}# Files it creates (database, state, logs) are private to the user
UMask=0077
NoNewPrivileges=yes
ProtectSystem=full

[Install]
WantedBy=multi-user.target
"""


def env_text(cfg: UnitConfig) -> str:
    """The environment file: what a user edits to change profile or domain."""
    return f"""\
# SAGE service settings (sage service install). Edit, then: systemctl restart sage
SAGE_PROFILE={cfg.profile}
ROS_DOMAIN_ID={cfg.domain_id}
HF_HUB_OFFLINE=1
"""


def systemd_running() -> bool:
    return Path('/run/systemd/system').is_dir()


def _systemctl(*args: str) -> None:
    if shutil.which('systemctl'):
        subprocess.run(['systemctl', *args], check=False)


def install(cfg: UnitConfig, unit_dir: Path = DEFAULT_UNIT_DIR) -> Path:
    """Write the unit and its environment file; reload systemd when it manages unit_dir.

    Raises:
        ServiceError: a file cannot be written (not root?).
    """
    unit = unit_dir / UNIT_NAME
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        cfg.env_file.parent.mkdir(parents=True, exist_ok=True)
        cfg.env_file.write_text(env_text(cfg))
        unit.write_text(unit_text(cfg))
        unit.chmod(0o644)
        cfg.env_file.chmod(0o644)
    except OSError as err:
        raise ServiceError(f'cannot write the service files: {err} (run with sudo?)') from err
    if systemd_running() and unit_dir == DEFAULT_UNIT_DIR:
        _systemctl('daemon-reload')
    return unit


def uninstall(unit_dir: Path = DEFAULT_UNIT_DIR,
              env_file: Path = DEFAULT_ENV_FILE) -> list[Path]:
    """Stop and disable the service (when systemd manages unit_dir), remove its files."""
    managed = systemd_running() and unit_dir == DEFAULT_UNIT_DIR
    if managed:
        _systemctl('disable', '--now', UNIT_NAME)
    removed = []
    for path in (unit_dir / UNIT_NAME, env_file):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise ServiceError(f'cannot remove {path}: {err} (run with sudo?)') from err
    if managed:
        _systemctl('daemon-reload')
    return removed
