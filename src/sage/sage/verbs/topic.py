"""Look at the running graph's topics without ros2cli: `sage topic list|echo|hz`."""
from __future__ import annotations

import sys
import time
from typing import Any, Optional

import typer

from sage.cli_args import WATCH_PROFILE_HELP, domain_option, fail, graph_settings

app = typer.Typer(no_args_is_help=True,
                  help="The running graph's topics: list them, print messages, measure rates.")

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).

WAIT_HELP = 'seconds to wait for the topic to be published (discovery)'


def _absolute(topic: str) -> str:
    return topic if topic.startswith('/') else f'/{topic}'


def _write(text: str) -> None:
    """Print and flush at once (a pipe sees each message as it arrives)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `sage topic echo ... | head`: the reader has had enough
        raise typer.Exit(0) from None


def _listen(client: Any, done: Any, seconds: Optional[float]) -> bool:
    """Spin until done() or seconds pass or Ctrl-C; True when done() came true."""
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while not done():
            if end is not None and time.monotonic() >= end:
                return False
            client.executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        return done()
    return True


@app.command('list')
def topic_list(
    wait: float = typer.Option(5.0, '--wait', min=0.5, help='longest wait for discovery to '
                               'settle (it stops once the list holds for 1 s)'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Every topic of the graph with its type and how many publish and subscribe."""
    from sage_bringup.environment import as_env, joined_graph
    with joined_graph(as_env(graph_settings(profile, domain_id, to_stderr=True))):
        # lazy: rclpy only for the verbs that talk to the graph
        from sage.inspect_graph import GraphClient
        with GraphClient('topic') as client:
            rows = [(name, ', '.join(types), *client.endpoint_counts(name))
                    for name, types in client.topics(wait)]
    if not rows:
        fail('no topics seen: is the graph running on this domain?', 1)
    width = max(len(r[0]) for r in rows)
    type_width = max(len(r[1]) for r in rows)
    for name, types, pubs, subs in rows:
        _write(f'{name:<{width}}  {types:<{type_width}}  {pubs} pub  {subs} sub\n')


@app.command('echo')
def topic_echo(
    topic: str = typer.Argument(..., help='topic name, e.g. /sage/salience'),
    count: Optional[int] = typer.Option(None, '--count', '-n', min=1,
                                        help='stop after this many messages'),
    seconds: Optional[float] = typer.Option(None, '--seconds', min=0.1,
                                            help='stop after this many seconds'),
    as_json: bool = typer.Option(False, '--json', help='one JSON object per line instead of '
                                 "YAML documents separated by '---'"),
    arrays: int = typer.Option(16, '--arrays', min=0, help='longer sequences are summarised '
                               '(length, type, first items); 0 prints them whole'),
    wait: float = typer.Option(10.0, '--wait', min=0.1, help=WAIT_HELP),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Print a topic's messages as they arrive (until --count, --seconds or Ctrl-C)."""
    from sage_bringup.environment import as_env, joined_graph
    from sage.inspect_messages import MessageTypeError, message_class, message_data, \
        render_json, render_yaml
    topic = _absolute(topic)
    render = render_json if as_json else render_yaml
    printed = [0]
    with joined_graph(as_env(graph_settings(profile, domain_id, to_stderr=True))):
        # lazy: rclpy only for the verbs that talk to the graph
        from sage.inspect_graph import GraphClient, InspectError
        with GraphClient('echo') as client:
            try:
                cls = message_class(client.topic_type(topic, wait))
            except (InspectError, MessageTypeError) as err:
                fail(str(err))

            def on_message(msg: Any) -> None:
                if count is None or printed[0] < count:
                    _write(render(message_data(msg, arrays)))
                    printed[0] += 1
            client.subscribe(cls, topic, on_message)
            complete = _listen(client, lambda: count is not None and printed[0] >= count,
                               seconds)
    if count is not None and not complete:
        fail(f'{printed[0]} of {count} messages on {topic} arrived', 1)


@app.command('hz')
def topic_hz(
    topic: str = typer.Argument(..., help='topic name, e.g. /sage/camera/image_raw'),
    window: int = typer.Option(100, '--window', '-w', min=1,
                               help='the rate is computed over this many latest messages'),
    count: Optional[int] = typer.Option(None, '--count', '-n', min=2,
                                        help='stop after this many messages'),
    seconds: Optional[float] = typer.Option(None, '--seconds', min=0.1,
                                            help='stop after this many seconds'),
    wait: float = typer.Option(10.0, '--wait', min=0.1, help=WAIT_HELP),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """A topic's rate, printed every second (until --count, --seconds or Ctrl-C)."""
    from sage_bringup.environment import as_env, joined_graph
    from sage.inspect_messages import MessageTypeError, message_class
    from sage.inspect_rate import RateWindow
    topic = _absolute(topic)
    rates = RateWindow(window)
    shown = [time.monotonic()]

    def report() -> bool:
        """Print the rate once a second; True when the run is complete."""
        if time.monotonic() - shown[0] >= 1.0:
            shown[0] = time.monotonic()
            rate = rates.rate()
            _write(f'{rate.line()}\n' if rate else f'waiting for messages on {topic}\n')
        return count is not None and rates.total >= count

    with joined_graph(as_env(graph_settings(profile, domain_id, to_stderr=True))):
        # lazy: rclpy only for the verbs that talk to the graph
        from sage.inspect_graph import GraphClient, InspectError
        with GraphClient('hz') as client:
            try:
                cls = message_class(client.topic_type(topic, wait))
            except (InspectError, MessageTypeError) as err:
                fail(str(err))
            # raw: the rate needs arrival times only, not a decoded 640x480 image
            client.subscribe(cls, topic, lambda _raw: rates.add(time.monotonic()), raw=True)
            shown[0] = time.monotonic()
            _listen(client, report, seconds)
    rate = rates.rate()
    if rate is None:
        fail(f'fewer than two messages on {topic}: no rate', 1)
    _write(f'{rate.line()}  ({rate.total} messages)\n')
