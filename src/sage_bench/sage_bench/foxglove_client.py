"""A Foxglove WebSocket client (the side Foxglove and Lichtblick speak), for
`sage bench graph --foxglove` and the live view's tests.

The protocol is foxglove.websocket.v1; the foxglove-sdk server (0.30) names it
`foxglove.sdk.v1` in the WebSocket handshake and refuses the old name (HTTP 400), with the same
messages (Lichtblick accepts the new name since its pull request 819). This client offers both
names, the new one first.

It connects, subscribes to every channel the server advertises (as a viewer with every panel
open would), counts what arrives per channel and keeps the last few payloads for decoding
against the advertised schema; it can read and write parameters. The protocol (JSON text
frames for control, binary frames for data):
https://github.com/foxglove/ws-protocol/blob/main/docs/spec.md
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
import itertools
import json
import struct
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

SUBPROTOCOLS = ('foxglove.sdk.v1', 'foxglove.websocket.v1')
OP_MESSAGE_DATA = 0x01  # u8 op, u32 subscription id, u64 log time (ns), payload
OP_TIME = 0x02
_HEADER = struct.Struct('<BIQ')


@dataclass
class ChannelStats:
    """What one channel delivered."""

    count: int = 0
    bytes: int = 0
    first: float | None = None  # monotonic arrival of the first message
    last: float | None = None
    samples: deque[bytes] = field(default_factory=lambda: deque(maxlen=3))
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=4096))  # monotonic

    def rate_hz(self, since: float, until: float) -> float:
        """Messages a second that arrived between two monotonic times."""
        n = sum(since <= t <= until for t in self.arrivals)
        return n / (until - since) if until > since else 0.0


class LiveViewClient:
    """One viewer of a live view server, on a thread of its own.

    Args:
        url: ws://host:port of the server.
        subscribe: subscribe to every advertised channel (False: connect only).
        keep: payloads kept per channel (0: count only, as the benchmark does).
    """

    def __init__(self, url: str, subscribe: bool = True, keep: int = 3) -> None:
        self.url = url
        self.subscribe = subscribe
        self.keep = keep
        self.server_info: dict[str, Any] = {}
        self.subprotocol = ''  # as the server chose it in the handshake
        self.channels: dict[int, dict[str, Any]] = {}  # id -> advertised channel
        self.stats: dict[int, ChannelStats] = {}
        self.errors: list[str] = []
        self.closed = False  # the server closed the connection
        self._cond = threading.Condition()
        self._replies: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, timeout: float = 20.0) -> LiveViewClient:
        """Connect (retrying while the server is not up yet) and start reading.

        Raises:
            TimeoutError: no server answered in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._ws = connect(self.url, subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
                                   open_timeout=5.0, max_size=None, compression=None,
                                   legacy=True)  # a connection held past this call
                self.subprotocol = str(self._ws.subprotocol)
                break
            # A server still starting or going away (a freed port's old owner) may take the
            # TCP connection and close it during the handshake: try again as for a refusal.
            except (OSError, TimeoutError, WebSocketException) as err:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f'no live view server at {self.url}: {err}') from err
                time.sleep(0.3)
        self._thread = threading.Thread(target=self._read, name='foxglove-client', daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._ws is not None:
            self._ws.close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> LiveViewClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # reading ------------------------------------------------------------------------------------

    def _read(self) -> None:
        assert self._ws is not None
        while not self._stop.is_set():
            try:
                frame = self._ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed:
                self.closed = True
                break
            if isinstance(frame, bytes):
                self._on_binary(frame)
            else:
                self._on_text(frame)
        with self._cond:
            self._cond.notify_all()

    def _on_binary(self, frame: bytes) -> None:
        if not frame or frame[0] != OP_MESSAGE_DATA:
            return  # OP_TIME and others: not needed here
        _, sub_id, _log_time = _HEADER.unpack_from(frame)
        now = time.monotonic()
        with self._cond:
            st = self.stats.setdefault(sub_id, ChannelStats(samples=deque(maxlen=self.keep)))
            st.count += 1
            st.bytes += len(frame) - _HEADER.size
            st.first = now if st.first is None else st.first
            st.last = now
            st.arrivals.append(now)
            if self.keep:
                st.samples.append(frame[_HEADER.size:])
            self._cond.notify_all()

    def _on_text(self, frame: str) -> None:
        msg = json.loads(frame)
        op = msg.get('op')
        new: list[dict[str, Any]] = []
        with self._cond:
            if op == 'serverInfo':
                self.server_info = msg
            elif op == 'advertise':
                for ch in msg.get('channels', []):
                    if ch['id'] not in self.channels:
                        new.append(ch)
                    self.channels[ch['id']] = ch
            elif op == 'unadvertise':
                for cid in msg.get('channelIds', []):
                    self.channels.pop(cid, None)
            elif op == 'parameterValues' and msg.get('id'):
                self._replies[str(msg['id'])] = msg
            elif op == 'status' and msg.get('level', 0) >= 2:  # 2: error
                self.errors.append(str(msg.get('message')))
            self._cond.notify_all()
        if self.subscribe and new:
            # subscription id = channel id: stats are keyed by channel
            self._send({'op': 'subscribe',
                        'subscriptions': [{'id': ch['id'], 'channelId': ch['id']}
                                          for ch in new]})

    def _send(self, msg: dict[str, Any]) -> None:
        if self._ws is not None:
            self._ws.send(json.dumps(msg))

    # queries -------------------------------------------------------------------------------------

    def wait_for(self, condition: Callable[[LiveViewClient], bool], timeout: float) -> bool:
        """Until condition(self) holds (checked on every arrival) or timeout passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=left)
            return True

    def by_topic(self) -> dict[str, tuple[dict[str, Any], ChannelStats]]:
        """Topic -> (advertised channel, what it delivered so far: a copy)."""
        with self._cond:
            return {ch['topic']: (ch, _copy(self.stats.get(cid, ChannelStats())))
                    for cid, ch in self.channels.items()}

    def reset_counts(self) -> None:
        with self._cond:
            self.stats.clear()

    def _request(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        rid = f'sage-{next(self._ids)}'
        self._send({**msg, 'id': rid})
        if not self.wait_for(lambda c: rid in c._replies, timeout):
            raise TimeoutError(f"no answer to {msg['op']} in {timeout} s")
        with self._cond:
            return self._replies.pop(rid)

    def get_parameters(self, names: list[str], timeout: float = 10.0) -> dict[str, Any]:
        """name -> value of the named parameters (every parameter for [])."""
        reply = self._request({'op': 'getParameters', 'parameterNames': names}, timeout)
        return {p['name']: p.get('value') for p in reply.get('parameters', [])}

    def set_parameters(self, values: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Write values; name -> value afterwards, as the server answers."""
        reply = self._request({'op': 'setParameters', 'parameters': [
            {'name': k, 'value': v} for k, v in values.items()]}, timeout)
        return {p['name']: p.get('value') for p in reply.get('parameters', [])}


def _copy(st: ChannelStats) -> ChannelStats:
    return ChannelStats(st.count, st.bytes, st.first, st.last,
                        deque(st.samples, maxlen=st.samples.maxlen),
                        deque(st.arrivals, maxlen=st.arrivals.maxlen))
