"""Read and set a running node's parameters without ros2cli: `sage param get|set|dump`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from sage.cli_args import WATCH_PROFILE_HELP, domain_option, fail, graph_settings

app = typer.Typer(no_args_is_help=True,
                  help="A running node's parameters (its rcl_interfaces parameter services).")

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).

NODE_HELP = 'node as the graph names it: camera, or a full name such as /robot1/camera'
WAIT_HELP = 'seconds to wait for the node to be discovered'


def _session(profile: str, domain_id: Optional[int], node: str, wait: float,
             work: Any) -> Any:
    """work(client, node_name) on the graph of the domain rule; graph errors exit 2."""
    from sage_bringup.environment import as_env, joined_graph
    with joined_graph(as_env(graph_settings(profile, domain_id, to_stderr=True))):
        # lazy: rclpy only for the verbs that talk to the graph
        from sage.inspect_graph import GraphClient, InspectError
        try:
            with GraphClient('param') as client:
                return work(client, client.find_node(node, wait))
        except InspectError as err:
            fail(str(err))


def _current(client: Any, node: Any, names: list[str]) -> dict[str, Any]:
    """name -> ParameterValue of parameters the node has (exit 2 naming one it lacks)."""
    from sage.inspect_values import NOT_SET
    values = client.get_parameters(node, names)
    missing = [n for n, v in values.items() if v.type == NOT_SET]
    if missing:
        fail(f"{node.full} has no parameter '{missing[0]}' (`sage param get {node.name}` "
             f'lists them)')
    return values


@app.command('get')
def param_get(
    node: str = typer.Argument(..., help=NODE_HELP),
    name: Optional[str] = typer.Argument(None, help='parameter (default: every one, '
                                                    'name: value per line)'),
    wait: float = typer.Option(10.0, '--wait', min=0.1, help=WAIT_HELP),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Print one parameter's value, or every parameter of the node."""
    from sage.inspect_graph import value_from_msg
    from sage.inspect_values import format_value

    def work(client: Any, found: Any) -> None:
        names = [name] if name else client.list_parameters(found)
        values = _current(client, found, names)
        for key in names:
            text = format_value(value_from_msg(values[key]))
            typer.echo(text if name else f'{key}: {text}')
    _session(profile, domain_id, node, wait, work)


@app.command('set')
def param_set(
    node: str = typer.Argument(..., help=NODE_HELP),
    name: str = typer.Argument(..., help='parameter'),
    value: str = typer.Argument(..., help="new value, read as the parameter's type "
                                          "(10, 0.5, true, text, '[1, 2]')"),
    wait: float = typer.Option(10.0, '--wait', min=0.1, help=WAIT_HELP),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Set a parameter at run time; the node checks it (range, type) and may refuse."""
    from sage.inspect_graph import value_from_msg, value_to_msg
    from sage.inspect_values import TYPE_NAMES, ValueParseError, format_value, parse_value

    def work(client: Any, found: Any) -> int:
        old = _current(client, found, [name])[name]
        try:
            new = parse_value(old.type, value)
        except ValueParseError as err:
            fail(f'{found.full} {name} is a {TYPE_NAMES.get(old.type, old.type)}: {err}')
        accepted, reason = client.set_parameter(found, name, value_to_msg(old.type, new))
        if not accepted:
            typer.echo(f'ERROR: {found.full} refused {name}={format_value(new)}: '
                       f'{reason or "no reason given"}', err=True)
            return 1
        typer.echo(f'{found.full} {name}: {format_value(value_from_msg(old))} -> '
                   f'{format_value(new)}')
        return 0
    raise typer.Exit(_session(profile, domain_id, node, wait, work))


@app.command('dump')
def param_dump(
    node: str = typer.Argument(..., help=NODE_HELP),
    out: Optional[Path] = typer.Option(None, '--out', '-o',
                                       help='write the YAML here (default: print it)'),
    wait: float = typer.Option(10.0, '--wait', min=0.1, help=WAIT_HELP),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Every parameter of a node as a ROS 2 parameter file (node: ros__parameters: ...)."""
    from sage.inspect_graph import value_from_msg
    from sage.inspect_values import dump_yaml

    def work(client: Any, found: Any) -> str:
        values = _current(client, found, client.list_parameters(found))
        return dump_yaml(found.full, {k: value_from_msg(v) for k, v in values.items()})
    text = _session(profile, domain_id, node, wait, work)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f'wrote {out}')
