"""sage.graph_picture: links between nodes from what DDS reports, their graphviz source and SVG.

test_live_view_browser reads a live nano graph with the same functions.
"""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from sage.graph_picture import (GraphInfo, OUTSIDE_IN, OUTSIDE_OUT, edges, render_svg,
                                service_edges, to_dot)


def _info() -> GraphInfo:
    return GraphInfo(
        nodes=['camera', 'vision_encoder', 'snarc', 'memory'],
        groups={'sensing': ['camera', 'vision_encoder', 'microphone']},
        publishes={'camera': {'/sage/camera/image_raw', '/sage/camera/camera_info', '/diagnostics',
                              '/rosout'},
                   'vision_encoder': {'/sage/vision/latent', '/diagnostics'},
                   'snarc': {'/sage/salience', '/parameter_events'},
                   'memory': {'/sage/memory/stored'}},
        subscribes={'vision_encoder': {'/sage/camera/image_raw'},
                    'camera': {'/sage/memory/sleep/_action/feedback'},  # an action's own
                    'snarc': {'/sage/vision/latent', '/sage/memory/stored', '/sage/reward'},
                    'memory': {'/sage/vision/latent', '/sage/salience', '/diagnostics'}},
        serves={'memory': {'/sage/memory/sleep', '/memory/get_parameters'}},
        calls={'snarc': {'/sage/memory/sleep', '/memory/get_parameters'}})


def test_links_join_publishers_to_subscribers_and_the_outside():
    links = edges(_info())
    assert links[('camera', 'vision_encoder')] == ['/sage/camera/image_raw']
    assert links[('vision_encoder', 'snarc')] == ['/sage/vision/latent']
    assert links[('vision_encoder', 'memory')] == ['/sage/vision/latent']
    assert links[('memory', 'snarc')] == ['/sage/memory/stored']
    assert links[('snarc', 'memory')] == ['/sage/salience']
    assert links[(OUTSIDE_IN, 'snarc')] == ['/sage/reward']  # nobody in the graph publishes it
    assert (OUTSIDE_IN, 'memory') not in links
    # diagnostics, the log and parameter events would join everything to everything
    assert not any(t in ('/diagnostics', '/rosout', '/parameter_events')
                   for topics in links.values() for t in topics)
    # nobody in the graph subscribes to it
    assert links[('camera', OUTSIDE_OUT)] == ['/sage/camera/camera_info']
    assert [pair for pair in links if pair[1] == OUTSIDE_OUT] == [('camera', OUTSIDE_OUT)]


def test_only_the_graphs_own_services_are_drawn():
    assert service_edges(_info()) == {('snarc', 'memory'): ['/sage/memory/sleep']}


def test_dot_source_names_processes_and_sources_and_renders_to_svg(tmp_path):
    info = _info()
    info.outside.append(('snarc', 'Foxglove', 'WebSocket'))
    source = to_dot(info, 'SAGE test graph')
    assert 'process: sensing' in source
    assert '"microphone"' not in source  # in the group, not in the graph
    assert '"camera" -> "vision_encoder" [label="camera/image_raw"];' in source
    assert 'style=dashed' in source and 'memory/sleep' in source
    assert '"snarc" -> "Foxglove" [label="WebSocket", style=dashed];' in source
    # drawn from the nodes nothing in the graph feeds, and what comes from outside
    assert '{rank=source; "camera"; "inputs from outside";}' in source
    assert '{rank=sink; "Foxglove"; "viewers, recorders";}' in source
    if shutil.which('dot') is None:
        pytest.fail('graphviz (dot) is missing: run scripts/install.sh')
    svg = tmp_path / 'graph.svg'
    render_svg(source, svg)
    texts = {t.text for t in ET.parse(svg).iter('{http://www.w3.org/2000/svg}text')}
    assert {'camera', 'vision_encoder', 'snarc', 'memory', 'camera/image_raw'} <= texts
    assert 'process: sensing' in texts
