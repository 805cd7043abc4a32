"""The `sage` command line. Each verb lives in its own module under sage.verbs; this one only
names them. Verb modules import what a verb needs inside it, so `sage --help` and every other
verb start without loading rclpy, onnxruntime, torch or SQLAlchemy."""
from __future__ import annotations

import sys

import typer

from sage.cli_args import SageGroup
from sage.verbs import (bag, bench, experiment, launch, memory, param, params, replay,
                        report, say, scenario, service, status, topic, train)
from sage_common.errors import SageError

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=SageGroup,
                  help='SAGE attention kernel: run the graph, replay bags, benchmark.')
for verb in (launch.launch, params.params, bench.bench, replay.replay, experiment.experiment,
             report.report, status.status, say.say):
    app.command()(verb)
# A negative reward (`sage reward -0.5`) is a value, not an unknown option.
app.command(context_settings={'ignore_unknown_options': True})(say.reward)
# The trainer parses its own options (and --help): they are shown by `sage train vision --help`.
app.command(context_settings={'allow_extra_args': True, 'ignore_unknown_options': True,
                              'help_option_names': []}, add_help_option=False)(train.train)
for name, group in (('bag', bag.app), ('scenario', scenario.app), ('memory', memory.app),
                    ('service', service.app), ('topic', topic.app), ('param', param.app)):
    app.add_typer(group, name=name)


def main() -> None:
    try:
        app()
    except SageError as err:
        typer.echo(f'ERROR: {err}', err=True)
        sys.exit(2)


if __name__ == '__main__':
    main()
