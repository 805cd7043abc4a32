"""The live view in a real browser: headless Chromium (Debian's) opens Foxglove Studio's core
(web/, served by web/serve.py) on a live nano graph's Foxglove WebSocket server with the SAGE
layout, and its screenshots show data: the image panel is not blank, the plot has a line.

Lichtblick itself is not on npm as a web build (@lichtblick/suite holds its extension API's
types only); @foxglove/studio-base 1.48, the open-source Foxglove Studio that Lichtblick forked,
is, as a ready bundle. docs/live-view.md says more. Screenshots are kept under
test-artifacts/live_view/ (the path is printed).
"""
from __future__ import annotations

import json
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import rclpy

from sage.graph_picture import edges, read_graph
from sage_bringup.paths import repo_root
from sage_bringup.profile import load_profile

pytestmark = pytest.mark.graph

ROOT = repo_root()
WEB = ROOT / 'web'
LAYOUT = ROOT / 'config' / 'foxglove' / 'sage_layout.json'
ARTIFACTS = ROOT / 'test-artifacts' / 'live_view'
CHROMIUM = '/usr/bin/chromium'
# The panels' types: Lichtblick's image panel (Studio's "new image panel"), its older one, Plot.
IMAGE_PANELS = ('Image', 'ImageViewPanel')
PLOT_PANEL = 'Plot'
# Seconds of data before the screenshots (the issue: "screenshots after 20 s show data").
SETTLE_S = 20
# Seconds the page may take to load and lay out its panels (a 56 MB bundle on a busy machine).
LOAD_TIMEOUT_S = 90
# A camera picture, not an empty panel: the rows that are not the panel's background (more
# than a fifth of their pixels differ from its commonest colour, the letterbox) cover at least
# this share of it ...
MIN_PICTURE_SHARE = 0.15
# ... their grey levels vary at least this much (std) and no one colour covers more than this
# share of them (an empty panel is its background and a line of text).
MIN_IMAGE_STD = 12.0
MAX_MODAL_SHARE = 0.5
# A plotted line: saturated pixels (the series colours; background, grid and labels are grey)
# in at least this many columns of the chart.
MIN_CHROMA = 80
MIN_LINE_COLUMNS_SHARE = 0.2
# The graph for the test: what the panels need (camera and salience); the rest stays out.
WITHOUT = ('memory', 'language_encoder')
# The salience plots (one per modality) must each show a line, but language's: its encoder is
# out (and no text is sent).
SALIENCE = '/sage/viz/salience/'
UNFED = (f'{SALIENCE}language',)


def image_metrics(pixels: np.ndarray) -> dict[str, float]:
    """The picture rows of a panel's canvas: their share of it, grey-level std and the share of
    their commonest colour."""
    rgb = pixels[..., :3].astype(np.int16)
    colours, counts = np.unique(rgb.reshape(-1, 3), axis=0, return_counts=True)
    background = colours[counts.argmax()]
    differs = np.abs(rgb - background).max(axis=2) > 8
    rows = differs.mean(axis=1) > 0.2
    if not rows.any():
        return {'picture_share': 0.0, 'std': 0.0, 'modal_share': 1.0}
    picture = rgb[rows].reshape(-1, 3)
    _, counts = np.unique(picture, axis=0, return_counts=True)
    return {'picture_share': float(rows.mean()), 'std': float(picture.mean(axis=1).std()),
            'modal_share': float(counts.max() / counts.sum())}


def image_shows_a_picture(pixels: np.ndarray) -> bool:
    m = image_metrics(pixels)
    return (m['picture_share'] >= MIN_PICTURE_SHARE and m['std'] >= MIN_IMAGE_STD
            and m['modal_share'] <= MAX_MODAL_SHARE)


def line_columns_share(pixels: np.ndarray) -> float:
    """Share of the chart's columns holding a saturated (series-coloured) pixel."""
    rgb = pixels[..., :3].astype(np.int16)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) >= MIN_CHROMA
    return float(coloured.any(axis=0).mean()) if coloured.size else 0.0


def plot_has_a_line(pixels: np.ndarray) -> bool:
    return line_columns_share(pixels) >= MIN_LINE_COLUMNS_SHARE


# --- the pixel checks on pictures made here (they must be able to fail) ---------------------

def _blank(colour=(30, 32, 36), shape=(300, 400)) -> np.ndarray:
    return np.full((*shape, 3), colour, np.uint8)


def test_an_empty_image_panel_fails_and_a_camera_picture_passes():
    empty = _blank()
    empty[140:160, 120:280] = 200  # "Waiting for images" as a bar of text
    assert not image_shows_a_picture(empty)
    rng = np.random.default_rng(0)
    panel = _blank(shape=(600, 400))  # a tall panel: the picture is letterboxed
    panel[150:450] = np.clip(rng.normal(110, 40, (300, 400, 3)), 0, 255).astype(np.uint8)
    panel[:, 0] = (90, 90, 90)  # the panel's border
    assert image_shows_a_picture(panel)
    flat = panel.copy()
    flat[150:450] = (120, 120, 120)  # a uniform frame is no picture either
    assert not image_shows_a_picture(flat)


def test_a_chart_without_a_line_fails_and_one_with_a_line_passes():
    chart = _blank()
    chart[::40, :] = (70, 70, 70)  # grid
    chart[280:, :] = (200, 200, 200)  # axis labels
    assert not plot_has_a_line(chart)
    x = np.arange(60, 400)
    y = (150 + 80 * np.sin(x / 30)).astype(int)
    chart[y, x] = (78, 152, 226)  # a series in Studio's first colour
    chart[y + 1, x] = (78, 152, 226)
    assert plot_has_a_line(chart)
    dot = _blank()
    dot[100:104, 200:204] = (78, 152, 226)
    assert not plot_has_a_line(dot)


# --- the real browser --------------------------------------------------------------------

def _prerequisites() -> None:
    missing = [str(p) for p in (WEB / 'node_modules' / '@foxglove' / 'studio-base',
                                WEB / 'node_modules' / 'playwright-core', Path(CHROMIUM))
               if not p.exists()]
    if shutil.which('node') is None:
        missing.append('node')
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install.sh")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def _serve(layout: Path, ws_url: str) -> tuple[subprocess.Popen, str]:
    """web/serve.py on a free port; (process, the page's URL it printed)."""
    proc = subprocess.Popen([sys.executable, str(WEB / 'serve.py'), '--port', '0', '--ws',
                             ws_url, '--layout', str(layout)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()  # its first line, once it listens
    if not url.startswith('http://'):
        proc.kill()
        pytest.fail(f'web/serve.py did not start: {url} {proc.stderr.read()}')
    return proc, url


def _stop(server: subprocess.Popen) -> None:
    server.kill()
    server.communicate()  # reaps it and closes its pipes


def _shoot(url: str, out: Path, settle_s: float, timeout_s: float) -> dict:
    """web/shoot.mjs: the page in headless Chromium, screenshots and result.json in out
    (timeout_s for the first WebSocket message, LOAD_TIMEOUT_S for the page)."""
    if out.exists():
        shutil.rmtree(out)
    proc = subprocess.run(['node', str(WEB / 'shoot.mjs'), '--url', url, '--out', str(out),
                           '--settle', str(settle_s), '--timeout', str(timeout_s),
                           '--load-timeout', str(LOAD_TIMEOUT_S), '--chromium', CHROMIUM],
                          capture_output=True, text=True,
                          timeout=settle_s + timeout_s + 2 * LOAD_TIMEOUT_S + 30)
    result_file = out / 'result.json'
    assert result_file.is_file(), f'shoot.mjs wrote no result: {proc.stdout} {proc.stderr}'
    result = json.loads(result_file.read_text())
    print(f'[live view] screenshots in {out}: {proc.stdout.strip()}')
    return result


def _wait_listening(port: int, graph: subprocess.Popen, timeout_s: float) -> None:
    """Until the graph's Foxglove server accepts a connection (its nodes load models first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert graph.poll() is None, 'the graph exited before its Foxglove server listened'
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f'no Foxglove server on port {port} within {timeout_s:.0f} s')


def _plots_only(panel_id: str, topics: tuple[str, ...]) -> bool:
    """Whether the layout's plot panel_id plots only message paths under these prefixes."""
    layout = json.loads(LAYOUT.read_text())
    paths = [p['value'] for p in layout['configById'][panel_id].get('paths', [])]
    return bool(paths) and all(any(v.startswith(t) for t in topics) for v in paths)


def _panel_pixels(out: Path, panel: dict) -> np.ndarray:
    """The panel's drawing (its largest canvas) cut from the page's screenshot, also kept as
    panel-<id>.png beside it."""
    box = panel.get('canvas')
    assert box, f"panel {panel['id']} has no canvas"
    page = cv2.imread(str(out / 'live_view.png'))
    left, top = round(box['x']), round(box['y'])
    crop = page[top:top + round(box['height']), left:left + round(box['width'])]
    cv2.imwrite(str(out / f"panel-{panel['id'].replace('!', '-')}.png"), crop)
    return np.ascontiguousarray(crop[..., ::-1])  # RGB


def _graph_links(domain: int) -> dict[tuple[str, str], list[str]]:
    """The running graph's topic links as sage.graph_picture reads them for the README."""
    names = [n.name for n in load_profile('nano').nodes if n.name not in WITHOUT]
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node('graph_picture_probe', context=context)
    try:
        info = read_graph(node, names, {}, timeout_s=20.0)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert sorted(info.nodes) == sorted(names)
    return edges(info)


def test_chromium_shows_the_camera_and_salience_lines_of_a_live_graph(
        ros_domain, tmp_path, nano_graph):
    _prerequisites()
    assert LAYOUT.is_file(), f'no layout at {LAYOUT}'
    port = _free_port()
    ws_url = f'ws://127.0.0.1:{port}'
    graph = nano_graph.launch(ros_domain, tmp_path / 'run', [f'foxglove.port={port}'],
                              without=WITHOUT)
    server, url = _serve(LAYOUT, ws_url)
    try:
        started = time.monotonic()
        _wait_listening(port, graph, 90.0)
        listening = time.monotonic()
        out = ARTIFACTS / 'live'
        result = _shoot(url, out, SETTLE_S, 30)
        print(f'[live view] server listening {listening - started:.1f} s after launch; '
              f'browser {time.monotonic() - listening:.1f} s')
    finally:
        _stop(server)
    assert result['ok'], f"{result['error']}; console: {result['console'][:5]}"
    assert result['status']['messages'] > 0
    panels = {p['id']: p for p in result['panels']}
    images = [p for p in panels.values() if p['type'] in IMAGE_PANELS]
    plots = [p for p in panels.values() if p['type'] == PLOT_PANEL]
    assert images and plots, f'the layout shows no image or no plot: {sorted(panels)}'
    for panel in images:
        pixels = _panel_pixels(out, panel)
        assert image_shows_a_picture(pixels), (panel['id'], image_metrics(pixels))
    shares = {p['id']: line_columns_share(_panel_pixels(out, p)) for p in plots}
    print(f'[live view] plot line column shares: {shares}')
    fed = [p['id'] for p in plots
           if _plots_only(p['id'], (SALIENCE,)) and not _plots_only(p['id'], UNFED)]
    assert fed, f'no salience plot of a modality this graph scores: {sorted(shares)}'
    lineless = {i: shares[i] for i in fed if shares[i] < MIN_LINE_COLUMNS_SHARE}
    assert not lineless, f'plots without a line: {lineless}'
    # A smaller copy for the docs (docs/img/live_view.png is one): 1200 px wide, 16 levels a
    # channel (a third of the bytes).
    page = cv2.imread(str(out / 'live_view.png'))
    small = cv2.resize(page, (1200, round(page.shape[0] * 1200 / page.shape[1])),
                       interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / 'live_view_small.png'), small // 16 * 16 + 8,
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    # The same live graph as the README's picture reads it (sage.graph_picture).
    read = time.monotonic()
    links = _graph_links(ros_domain)
    print(f'[live view] graph read in {time.monotonic() - read:.1f} s')
    assert '/sage/camera/image_raw' in links[('camera', 'vision_encoder')], links
    assert '/sage/salience' in links[('snarc', 'orchestrator')], links


def test_without_a_server_the_page_reports_no_connection_and_the_panels_stay_empty(tmp_path):
    """The same page and checks with nothing listening: the driver fails, the pixels fail."""
    _prerequisites()
    server, url = _serve(LAYOUT, f'ws://127.0.0.1:{_free_port()}')
    try:
        out = ARTIFACTS / 'no_server'
        result = _shoot(url, out, 0, 5)
    finally:
        _stop(server)
    assert not result['ok']
    assert result['status'] and result['status']['messages'] == 0
    assert not result['status']['connected']
    drawn = [p for p in result['panels'] if p.get('canvas')]
    assert any(p['type'] in IMAGE_PANELS for p in drawn), result['panels']
    for panel in drawn:
        if panel['type'] in IMAGE_PANELS:
            assert not image_shows_a_picture(_panel_pixels(out, panel)), panel['id']
        if panel['type'] == PLOT_PANEL:
            assert not plot_has_a_line(_panel_pixels(out, panel)), panel['id']
