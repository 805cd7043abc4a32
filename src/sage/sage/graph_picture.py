"""The node graph as a picture, read from a running graph: which node publishes and subscribes
to which topic, and which serves or calls which service, drawn with graphviz (`dot`).

    python -m sage.graph_picture [--profile nano] [--out docs/img/graph] [--domain-id N]

launches the profile (`sage launch`), asks DDS for every profile node's topics and services,
stops the graph and writes OUT.dot and OUT.svg (the README's picture). Nodes that share a
process (the profile's compose groups) are drawn in one box.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass, field
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import rclpy
from rclpy.node import Node

from sage_bench.foxglove_client import LiveViewClient
from sage_bringup.paths import repo_root
from sage_bringup.profile import load_profile
from sage_common.processes import interrupt
from sage_common.vocabulary import PREFIX, Topic

# Every node has these; they would connect everything to everything.
IGNORED_TOPICS = frozenset({Topic.DIAGNOSTICS, '/rosout', '/parameter_events'})
GRAPH_PREFIX = '/' + PREFIX  # the graph's own topics and services (no namespace)
LIVE_VIEW = 'foxglove'  # the node serving the Foxglove live view (sage.foxglove_node)
OUTSIDE_IN = 'inputs from outside'
OUTSIDE_OUT = 'viewers, recorders'


@dataclass
class GraphInfo:
    """What DDS says about a graph's nodes: name -> topics or services."""

    nodes: list[str]
    groups: dict[str, list[str]] = field(default_factory=dict)  # process -> its nodes
    publishes: dict[str, set[str]] = field(default_factory=dict)
    subscribes: dict[str, set[str]] = field(default_factory=dict)
    serves: dict[str, set[str]] = field(default_factory=dict)
    calls: dict[str, set[str]] = field(default_factory=dict)
    # Links that are no DDS topic: (node, where to, label), e.g. the live view's WebSocket.
    outside: list[tuple[str, str, str]] = field(default_factory=list)


def short(name: str) -> str:
    """A topic or service name without the graph's common prefix."""
    return name[len(GRAPH_PREFIX):] if name.startswith(GRAPH_PREFIX) else name


def _hidden(name: str) -> bool:
    """An action's own topics and services (`.../_action/feedback`): the action is one link."""
    return '/_action/' in name


def edges(info: GraphInfo) -> dict[tuple[str, str], list[str]]:
    """(from, to) -> sorted topic names; topics with no publisher (or no subscriber) in the
    graph come from OUTSIDE_IN (go to OUTSIDE_OUT)."""
    publishers: dict[str, set[str]] = defaultdict(set)
    subscribers: dict[str, set[str]] = defaultdict(set)
    for node in info.nodes:
        for topic in info.publishes.get(node, set()) - IGNORED_TOPICS:
            if not _hidden(topic):
                publishers[topic].add(node)
        for topic in info.subscribes.get(node, set()) - IGNORED_TOPICS:
            if not _hidden(topic):
                subscribers[topic].add(node)
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for topic in set(publishers) | set(subscribers):
        for src in publishers.get(topic) or {OUTSIDE_IN}:
            for dst in subscribers.get(topic) or {OUTSIDE_OUT}:
                if src != dst:
                    out[(src, dst)].add(topic)
    return {pair: sorted(topics) for pair, topics in sorted(out.items())}


def service_edges(info: GraphInfo) -> dict[tuple[str, str], list[str]]:
    """(client, server) -> sorted service names, for the graph's own services (a node's
    parameter services are left out)."""
    servers: dict[str, set[str]] = defaultdict(set)
    for node in info.nodes:
        for service in info.serves.get(node, set()):
            if service.startswith(GRAPH_PREFIX):
                servers[service].add(node)
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for node in info.nodes:
        for service in info.calls.get(node, set()):
            for server in servers.get(service, set()):
                if server != node:
                    out[(node, server)].add(service)
    return {pair: sorted(names) for pair, names in sorted(out.items())}


def _quote(text: str) -> str:
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"') + '"'


def _label(names: list[str]) -> str:
    return '\\n'.join(_quote(short(n))[1:-1] for n in names)


def to_dot(info: GraphInfo, title: str) -> str:
    """graphviz source of the graph, drawn left to right from its sources (the sensors, and
    what comes from outside): nodes as boxes (with the process they are composed into), an edge
    per (publisher, subscriber) pair labelled with its topics, dashed edges for service calls
    and for links that are no DDS topic."""
    lines = [f'digraph {_quote(title)} {{',
             '  rankdir=LR; nodesep=0.3; ranksep=0.9;',
             '  node [shape=box, style="rounded,filled", fillcolor="#e8f0fb", color="#4e79a7", '
             'fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9, color="#5f6670", fontcolor="#3b4048"];']
    process = {m: g for g, members in info.groups.items() for m in members}
    for n in info.nodes:
        if n in process:
            lines.append(f'  {_quote(n)} [label=<{n}<BR/><FONT POINT-SIZE="8" COLOR="#5f6670">'
                         f'process: {process[n]}</FONT>>];')
        else:
            lines.append(f'  {_quote(n)};')
    topic_edges = edges(info)
    outside = [(src, dst, label) for src, dst, label in info.outside]
    ends = ({OUTSIDE_IN, OUTSIDE_OUT} & {n for pair in topic_edges for n in pair}) | {
        dst for _, dst, _ in outside}
    for end in sorted(ends):
        lines.append(f'  {_quote(end)} [shape=plaintext, style="", fontcolor="#5f6670"];')
    for (src, dst), topics in topic_edges.items():
        lines.append(f'  {_quote(src)} -> {_quote(dst)} [label="{_label(topics)}"];')
    for (client, server), services in service_edges(info).items():
        lines.append(f'  {_quote(client)} -> {_quote(server)} [label="{_label(services)}", '
                     'style=dashed, color="#e15759", fontcolor="#e15759"];')
    for src, dst, label in outside:
        lines.append(f'  {_quote(src)} -> {_quote(dst)} [label={_quote(label)}, style=dashed];')
    fed = {dst for src, dst in topic_edges if src != OUTSIDE_IN}
    sources = [n for n in info.nodes if n not in fed] + sorted({OUTSIDE_IN} & ends)
    if sources:
        lines.append('  {rank=source; ' + ' '.join(f'{_quote(n)};' for n in sources) + '}')
    sinks = sorted(ends - {OUTSIDE_IN})
    if sinks:
        lines.append('  {rank=sink; ' + ' '.join(f'{_quote(n)};' for n in sinks) + '}')
    lines.append('}')
    return '\n'.join(lines) + '\n'


def read_graph(node: Node, names: list[str], groups: dict[str, list[str]],
               timeout_s: float, settle_s: float = 2.0) -> GraphInfo:
    """Ask DDS for the named nodes' topics and services until every node is seen and nothing
    changed for settle_s (discovery comes in pieces), or timeout_s passed."""
    deadline = time.monotonic() + timeout_s
    last: GraphInfo | None = None
    stable_since = time.monotonic()
    while True:
        time.sleep(0.2)  # DDS discovery fills the node's graph cache in the background
        seen = {n for n, ns in node.get_node_names_and_namespaces() if ns == '/'}
        info = GraphInfo(nodes=[n for n in names if n in seen], groups=groups)
        for name in info.nodes:
            try:
                info.publishes[name] = {t for t, _ in
                                        node.get_publisher_names_and_types_by_node(name, '/')}
                info.subscribes[name] = {t for t, _ in
                                         node.get_subscriber_names_and_types_by_node(name, '/')}
                info.serves[name] = {s for s, _ in
                                     node.get_service_names_and_types_by_node(name, '/')}
                info.calls[name] = {s for s, _ in
                                    node.get_client_names_and_types_by_node(name, '/')}
            except RuntimeError:  # rclpy's NodeNameNonExistentError (an RCLError) on every distro
                continue  # gone between two calls: the next round sees it again
        now = time.monotonic()
        if last is None or info != last:
            last, stable_since = info, now
        elif len(info.nodes) == len(names) and now - stable_since >= settle_s:
            return info
        if now >= deadline:
            return info


def render_svg(dot_source: str, out: Path) -> None:
    """graphviz's `dot` (Debian package graphviz) draws the SVG."""
    dot = shutil.which('dot')
    if dot is None:
        raise RuntimeError('graphviz is needed: apt-get install graphviz')
    subprocess.run([dot, '-Tsvg', '-o', str(out)], input=dot_source.encode(), check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='Draw the running node graph with graphviz.')
    parser.add_argument('--profile', default='nano')
    parser.add_argument('--out', type=Path, default=repo_root() / 'docs' / 'img' / 'graph',
                        help='writes OUT.dot and OUT.svg')
    parser.add_argument('--domain-id', type=int, default=77,
                        help='ROS domain the graph is launched on for the picture')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds to wait for every node to appear')
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    names = [n.name for n in profile.nodes]
    groups = ({g: list(m) for g, m in profile.settings.get('compose_groups', {}).items()}
              if profile.composed() else {})
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain_id),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    # The live view subscribes to the graph only while a viewer watches: one does, so its
    # inputs are drawn (on a port of its own; the picture names the profile's).
    viewer_port = _free_port() if LIVE_VIEW in names else 0
    extra = ['--set', f'{LIVE_VIEW}.port={viewer_port}'] if viewer_port else []
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'sage.cli', 'launch', args.profile, '--duration',
             str(int(args.timeout) + 60), '--domain-id', str(args.domain_id), '--quiet',
             '--run-dir', str(Path(tmp) / 'run'), *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rclpy.init(domain_id=args.domain_id)
        node = rclpy.create_node('sage_graph_picture')
        viewer = None
        try:
            if viewer_port:
                viewer = LiveViewClient(f'ws://127.0.0.1:{viewer_port}', keep=0)
                viewer.start(timeout=args.timeout)
            info = read_graph(node, names, groups, args.timeout)
        finally:
            if viewer is not None:
                viewer.close()
            node.destroy_node()
            rclpy.try_shutdown()
            interrupt(proc, 30.0)
    if viewer_port:
        port = profile.node(LIVE_VIEW).parameters.get('port', viewer_port)
        info.outside.append((LIVE_VIEW, 'Foxglove, Lichtblick', f'WebSocket :{port}'))
    missing = sorted(set(names) - set(info.nodes))
    if missing:
        print(f"ERROR: nodes not seen within {args.timeout:.0f} s: {', '.join(missing)}",
              file=sys.stderr)
        return 1
    source = to_dot(info, f'SAGE {args.profile} graph')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix('.dot').write_text(source)
    render_svg(source, args.out.with_suffix('.svg'))
    print(f"{args.out.with_suffix('.svg')}: {len(info.nodes)} nodes, "
          f'{len(edges(info))} topic links, {len(service_edges(info))} service links')
    return 0


if __name__ == '__main__':
    sys.exit(main())
