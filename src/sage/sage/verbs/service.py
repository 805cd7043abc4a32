"""Run SAGE as a systemd service: `sage service`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sage.cli_args import fail, domain_option
from sage_common.errors import SageError

app = typer.Typer(no_args_is_help=True,
                   help='Run SAGE as a systemd service (boot start, watchdog).')

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


@app.command('install')
def service_install(
    profile: str = typer.Option('nano', '--profile', help='profile name or YAML path'),
    user: Optional[str] = typer.Option(None, '--user', help='run as (default: the caller)'),
    unit_dir: Path = typer.Option(Path('/etc/systemd/system'), '--unit-dir'),
    env_file: Path = typer.Option(Path('/etc/default/sage'), '--env-file',
                                  help='profile and domain for the service'),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Write sage.service (Type=notify, watchdog, restart on failure) and its settings."""
    from sage_bringup.environment import resolve_domain
    from sage_bringup.profile import load_profile
    from sage_bringup.service import install, unit_config
    try:
        prof = load_profile(profile)
        domain = resolve_domain(prof, domain_id)
        cfg = unit_config(prof, user, domain_id, env_file, profile)
        unit = install(cfg, unit_dir)
    except SageError as err:
        fail(str(err))
    typer.echo(f'wrote {unit} and {env_file} with {domain}; start at boot with: '
               'sudo systemctl daemon-reload && sudo systemctl enable --now sage')


@app.command('uninstall')
def service_uninstall(
    unit_dir: Path = typer.Option(Path('/etc/systemd/system'), '--unit-dir'),
    env_file: Path = typer.Option(Path('/etc/default/sage'), '--env-file'),
) -> None:
    """Stop and disable the service, remove its unit and settings."""
    from sage_bringup.service import uninstall
    try:
        removed = uninstall(unit_dir, env_file)
    except SageError as err:
        fail(str(err))
    typer.echo('removed ' + (', '.join(map(str, removed)) or 'nothing (not installed)'))

