"""Give the running graph an input by hand: `sage say TEXT` and `sage reward VALUE`."""
from __future__ import annotations

from typing import Any, Optional

import typer

from sage.cli_args import WATCH_PROFILE_HELP, domain_option, fail, graph_settings

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).

WAIT_HELP = 'seconds to wait for a subscriber (the graph) before giving up'
SOURCE_HELP = 'who gives it (the message\'s source field)'
NAMESPACE_HELP = 'namespace of the graph (one launched with --namespace /r1: /r1/sage/...)'

# The options both verbs take (typer reads an option's declaration as the parameter's default,
# and one declaration serves several commands).
SOURCE = typer.Option('operator', '--source', help=SOURCE_HELP)
NAMESPACE = typer.Option('', '--namespace', help=NAMESPACE_HELP)
WAIT = typer.Option(10.0, '--wait', min=0.1, help=WAIT_HELP)
PROFILE = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP)


def _publish(profile: str, domain_id: Optional[int], namespace: str, wait: float,
             msg_class: Any, topic: str, fill: Any) -> Any:
    """Publish one message, stamped now, once the graph subscribes; the message sent."""
    from sage_bringup.environment import as_env, joined_graph
    with joined_graph(as_env(graph_settings(profile, domain_id, to_stderr=True))):
        # lazy: rclpy only for the verbs that talk to the graph
        from sage.inspect_graph import GraphClient, InspectError
        from sage_common.ros import RELIABLE_QOS
        try:
            with GraphClient('say', namespace) as client:
                return client.publish_once(msg_class, topic, fill, RELIABLE_QOS, wait)
        except InspectError as err:
            fail(str(err))


def _stamp(msg: Any) -> str:
    return f'{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}'


def say(
    text: str = typer.Argument(..., help='what to say (UTF-8 text)'),
    source: str = SOURCE,
    namespace: str = NAMESPACE,
    wait: float = WAIT,
    profile: str = PROFILE,
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Send a text input to the graph (sage_interfaces/TextInput): the language encoder
    embeds it and SNARC scores it like any other input."""
    # lazy: ROS messages only for the verbs that talk to the graph
    from sage_interfaces.msg import TextInput
    from sage_common.vocabulary import Topic
    if not text.strip():
        fail('nothing to say: the text is empty')

    def fill(msg: Any, stamp: Any) -> None:
        msg.header.stamp = stamp
        msg.text = text
        msg.source = source
    sent = _publish(profile, domain_id, namespace, wait, TextInput, Topic.TEXT_IN, fill)
    typer.echo(f'said {text!r} (source {source}, stamp {_stamp(sent)})')


def reward(
    value: float = typer.Argument(..., min=-1.0, max=1.0,
                                  help='reward in [-1, 1] (positive: a good outcome)'),
    source: str = SOURCE,
    namespace: str = NAMESPACE,
    wait: float = WAIT,
    profile: str = PROFILE,
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Send a reward to the graph (sage_interfaces/Reward): SNARC credits it to the inputs it
    attended in the last reward.window_s seconds, whatever their modality."""
    # lazy: ROS messages only for the verbs that talk to the graph
    from sage_interfaces.msg import Reward
    from sage_common.vocabulary import Topic

    def fill(msg: Any, stamp: Any) -> None:
        msg.header.stamp = stamp
        msg.value = float(value)
        msg.source = source
    sent = _publish(profile, domain_id, namespace, wait, Reward, Topic.REWARD, fill)
    typer.echo(f'reward {value:g} sent (source {source}, stamp {_stamp(sent)})')
