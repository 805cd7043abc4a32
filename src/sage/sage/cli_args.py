"""What every `sage` verb shares: option help, error exit, the domain option, and the
command-line spellings the CLI accepts beyond click's own.

`--set a.b=1 c.d=2` means `--set a.b=1 --set c.d=2` (click takes one value per option), and
`--vs a.b=1 c.d=2` is one variant of two overrides, like `--vs 'a.b=1 c.d=2'`. Only words
shaped `node.param=value` are taken, so positional arguments (profiles, bag folders) after
the option are left alone.
"""
from __future__ import annotations

from collections.abc import Sequence
import re
import shlex
from typing import Any, NoReturn, Optional

import typer
from typer.core import TyperGroup

from sage_common.errors import SageError

OVERRIDE = re.compile(r'[A-Za-z_]\w*(\.\w+)+=')
REPEATED = '--set'  # each further override becomes its own --set
JOINED = '--vs'     # further overrides join the variant's value


def expand_overrides(args: Sequence[str]) -> list[str]:
    """The argument list with space-separated overrides after --set/--vs made explicit."""
    out: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == '--':
            return out + list(args[i:])
        option, eq, inline = word.partition('=')
        if option not in (REPEATED, JOINED) or (not eq and i + 1 >= len(args)):
            out.append(word)
            i += 1
            continue
        values = [inline] if eq else [args[i + 1]]
        i += 1 if eq else 2
        while i < len(args) and OVERRIDE.match(args[i]):
            values.append(args[i])
            i += 1
        if option == REPEATED:
            for value in values:
                out += [option, value]
        else:
            out += [option, ' '.join([values[0], *(shlex.quote(v) for v in values[1:])])]
    return out


class SageGroup(TyperGroup):
    """The top-level command group: expands overrides before click parses anything."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_overrides(args))


SET_HELP = 'override: node.param=value (repeatable; --set a.b=1 c.d=2 works too)'
DOMAIN_HELP = ("ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID, else the profile's launch.domain_id; "
               'the same rule for every command)')
WATCH_PROFILE_HELP = "profile the graph runs (its launch.domain_id is the default domain)"
URL_HELP = "database URL or SQLite path ('' = default file)"


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f'ERROR: {message}', err=True)
    raise typer.Exit(code)


def domain_option() -> Any:
    return typer.Option(None, '--domain-id', min=0, max=232, help=DOMAIN_HELP)


def graph_settings(profile: str, domain_id: Optional[int], to_stderr: bool = False) -> list:
    """The running graph's DDS settings by sage_bringup.environment's rule, printed at start
    (on stderr with to_stderr: a command whose stdout is data, like `sage topic echo`)."""
    # lazy: `sage --help` loads none of what a verb needs (see sage.cli)
    from sage_bringup.environment import describe, graph_choices
    from sage_bringup.profile import load_launch_settings
    try:
        choices = graph_choices(load_launch_settings(profile), domain_id)
    except SageError as err:
        fail(str(err))
    typer.echo(f'[sage] DDS: {describe(choices)}', err=to_stderr)
    return choices
