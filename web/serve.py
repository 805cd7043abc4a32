#!/usr/bin/env python3
"""Serves the SAGE live view page (Foxglove Studio's core and the SAGE layout) on this host.

    python web/serve.py [--port 8080] [--ws ws://127.0.0.1:8765] [--layout FILE]

prints the page's address (with the data source and layout in its query) and serves until
stopped. Needs `npm ci --prefix web` (scripts/install.sh does it). Standard library only.
"""
from __future__ import annotations

import argparse
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import sys
from urllib.parse import quote, urlsplit

WEB = Path(__file__).resolve().parent
ROOT = WEB.parent
MODULES = WEB / 'node_modules'
# URL path -> file, and URL prefix -> folder; nothing else is served.
FILES = {
    '/': WEB / 'index.html',
    '/index.html': WEB / 'index.html',
    '/live_view.js': WEB / 'live_view.js',
    '/vendor/react.js': MODULES / 'react/umd/react.production.min.js',
    '/vendor/react-dom.js': MODULES / 'react-dom/umd/react-dom.production.min.js',
}
FOLDERS = {'/assets/': MODULES / '@foxglove/studio-base/assets'}


class LiveViewHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                      '.js': 'text/javascript', '.wasm': 'application/wasm',
                      '.json': 'application/json'}

    def __init__(self, *args, layout: Path, **kwargs) -> None:
        self.layout = layout
        super().__init__(*args, directory=str(WEB), **kwargs)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == '/favicon.ico':  # none: say so without an error
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def translate_path(self, path: str) -> str:
        url_path = urlsplit(path).path
        if url_path == '/layout.json':
            return str(self.layout)
        if url_path in FILES:
            return str(FILES[url_path])
        for prefix, folder in FOLDERS.items():
            name = url_path[len(prefix):]
            if url_path.startswith(prefix) and name and '/' not in name and name[0] != '.':
                return str(folder / name)
        return str(WEB / '.not-served')  # a 404

    def list_directory(self, path):  # type: ignore[no-untyped-def]
        self.send_error(404)
        return None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)


def page_url(host: str, port: int, ws_url: str) -> str:
    """The page's address with Studio's deep-link parameters: data source and layout."""
    return (f'http://{host}:{port}/?ds=foxglove-websocket&ds.url={quote(ws_url, safe="")}'
            '&layoutId=sage')


def make_server(host: str, port: int, layout: Path, verbose: bool = False) -> ThreadingHTTPServer:
    missing = [p for p in (*FILES.values(), *FOLDERS.values(), layout) if not p.exists()]
    if missing:
        raise FileNotFoundError('missing (run scripts/install.sh, or npm ci --prefix web): '
                                + ', '.join(str(p) for p in missing))
    server = ThreadingHTTPServer((host, port), partial(LiveViewHandler, layout=layout))
    server.daemon_threads = True
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--host', default='127.0.0.1', help='address to serve on')
    parser.add_argument('--port', type=int, default=8080, help='port (0: any free one)')
    parser.add_argument('--ws', default='ws://127.0.0.1:8765',
                        help="the graph's Foxglove WebSocket server")
    parser.add_argument('--layout', type=Path,
                        default=ROOT / 'config' / 'foxglove' / 'sage_layout.json',
                        help='Foxglove layout file the page opens')
    parser.add_argument('--verbose', action='store_true', help='log every request')
    args = parser.parse_args(argv)
    try:
        server = make_server(args.host, args.port, args.layout.resolve(), args.verbose)
    except (FileNotFoundError, OSError) as exc:
        print(f'ERROR: {exc}', file=sys.stderr)
        return 1
    print(page_url(args.host, server.server_address[1], args.ws), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
