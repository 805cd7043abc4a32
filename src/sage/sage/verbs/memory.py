"""Inspect, export, import and sync memory: `sage memory`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from sage.cli_args import WATCH_PROFILE_HELP, URL_HELP, fail, domain_option, graph_settings

app = typer.Typer(no_args_is_help=True, help='Inspect, export, import, sync memory.')

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


@app.command('summary')
def memory_summary(url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Rows per modality, devices and time span of a memory database."""
    from sage_memory.store.memory_store import summarize
    typer.echo(json.dumps(summarize(url), indent=2, default=str))


@app.command('sleep')
def memory_sleep(
    max_duration: float = typer.Option(600.0, '--max-duration', min=1.0, max=3600.0,
                                       help='longest sleep in seconds'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Ask the running graph's memory node to sleep now: consolidate, then retrain.

    Prints the sleep's progress as it goes; Ctrl-C cancels it (the previous model stays live)
    and exits 130.
    """
    from sage_bringup.environment import as_env, joined_graph
    from sage.memory_sleep import run_memory_sleep
    from sage.progress import progress_bar
    with joined_graph(as_env(graph_settings(profile, domain_id))):
        with progress_bar('sleep', max_duration, unit='s') as report:
            code = run_memory_sleep(max_duration, progress=report)
    raise typer.Exit(code)


@app.command('query')
def memory_query(text: str = typer.Argument(..., help='what to recall'),
                 k: int = typer.Option(10, '--k', help='number of results (1..1000)'),
                 url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Recall by text: the k most similar language memories, embedded as the memory node does."""
    from sage.memory_query import run_memory_query
    raise typer.Exit(run_memory_query(text, k, url))


@app.command('export')
def memory_export(path: Path = typer.Argument(..., help='portable file to write'),
                  url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Export every experience and state row to a portable file."""
    from sage_memory.sync.transfer import export_memory
    typer.echo(json.dumps(export_memory(url, path), default=str))


@app.command('import')
def memory_import(path: Path = typer.Argument(..., help='file written by export'),
                  url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Merge an exported file into a database (idempotent)."""
    from sage_memory.sync.transfer import import_memory
    typer.echo(json.dumps(import_memory(url, path), default=str))


@app.command('sync')
def memory_sync(remote: str = typer.Argument(..., help="shared PostgreSQL URL, or 'status': "
                                                       "this store's outboxes"),
                url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Two-way merge with a shared database (idempotent, loses nothing); `sync status` shows
    each outbox's shared store, backlog and last exchange."""
    if remote == 'status':
        from sage_memory.sync.outbox import status_of
        typer.echo(json.dumps(status_of(url), indent=2, default=str))
        return
    from sage_memory.sync.transfer import sync
    typer.echo(json.dumps(sync(url, remote), default=str))


@app.command('models')
def memory_models(
    modality: Optional[str] = typer.Option(None, '--modality', help='vision or audio '
                                           '(default: both)'),
    rollback: Optional[str] = typer.Option(None, '--rollback', help="make an older version "
                                           "(v0001, ...) or 'packaged' live again "
                                           '(needs --modality)'),
    data_dir: str = typer.Option('~/.local/share/sage', '--data-dir', help="the memory "
                                 "node's data_dir (versions are in <data_dir>/models)"),
) -> None:
    """Encoder model versions written by sleep retraining: list them, or roll one back.

    A running graph follows a rollback within a few seconds: the memory node reads which
    version is live at its diagnostics period and the encoders load what it publishes.
    """
    from sage_encoders.model_versions import ModelVersions, VersionError, format_rows
    root = Path(data_dir).expanduser() / 'models'
    mods = [modality] if modality else ['vision', 'audio']
    try:
        if rollback is not None:
            if not modality:
                fail('--rollback needs --modality vision|audio')
            doc = ModelVersions(root, modality).rollback(rollback)
            typer.echo(f"{modality}: {doc['version']} is live (was {doc['previous']})")
            return
        for m in mods:
            v = ModelVersions(root, m)
            typer.echo(format_rows(m, v.rows()))
    except VersionError as err:
        fail(str(err))

