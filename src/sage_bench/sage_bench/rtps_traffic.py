"""Which DDS writer sent what over a link: RTPS DATA submessages counted per writer GUID.

The two-host rig's relay sees raw IPv4 packets. A UDP datagram that carries RTPS holds a
header with the sender's GUID prefix and a series of submessages; each DATA or DATA_FRAG
names the writer entity whose sample it carries. Counting their bytes per writer GUID, and
mapping GUIDs to topics with the graph's endpoint GIDs (rclpy's TopicEndpointInfo), gives the
bandwidth each topic needs on the link. Everything else in an RTPS datagram (discovery,
heartbeats, acknowledgements, headers) and non-RTPS traffic are counted apart, so the topic
figures plus the overhead add up to what crossed.
"""
from __future__ import annotations

from collections import Counter
import struct

_RTPS = b'RTPS'
_DATA, _DATA_FRAG, _INFO_SRC = 0x15, 0x16, 0x0c
PROTOCOL = 'dds protocol'  # RTPS bytes outside any sample: IP/UDP/RTPS headers, heartbeats, acks
DISCOVERY = 'dds discovery'  # samples of the builtin (discovery) writers
UNLISTED = 'unlisted writers'  # writers the graph did not list (gone before the query)


def _connection(proto: int, ports: tuple[int, int]) -> tuple[str, int, int]:
    """('tcp' | 'udp', A, B) with A <= B: both directions of a connection count together."""
    lo, hi = sorted(ports)
    return ('tcp' if proto == 6 else 'udp', lo, hi)


class Fragments:
    """Who the IP fragments of a datagram belong to: the key its first fragment was counted
    under (a UDP datagram above the link MTU, e.g. a 1.4 kB latent, arrives in pieces)."""

    def __init__(self, keep: int = 1024) -> None:
        self.keep = keep
        self._owner: dict[bytes, object] = {}

    def owner(self, ident: bytes) -> object:
        return self._owner.get(ident, 'other')

    def first(self, ident: bytes, key: object) -> None:
        self._owner[ident] = key
        if len(self._owner) > self.keep:  # the oldest datagrams are complete by now
            del self._owner[next(iter(self._owner))]


def count_packet(packet: bytes, writers: Counter, samples: Counter,
                 fragments: Fragments | None = None) -> None:
    """Add one IPv4 packet's bytes to `writers` (key: 16-byte writer GUID, or a label).

    DATA / DATA_FRAG submessage bytes go to their writer's GUID (samples counts DATA and
    first fragments), the rest of an RTPS datagram to PROTOCOL; a packet that is not RTPS
    over UDP to its connection, ('tcp' | 'udp', lower port, higher port), or 'other'. An IP
    fragment after the first goes where the last sample of its first fragment went
    (`fragments` remembers; without it, to 'other').
    """
    if len(packet) < 20 or packet[0] >> 4 != 4:
        writers['other'] += len(packet)
        return
    ihl = (packet[0] & 0x0F) * 4
    proto = packet[9]
    (frag,) = struct.unpack_from('!H', packet, 6)
    ident = packet[4:6] + packet[12:20] + bytes([proto])
    if frag & 0x1FFF:  # not the first fragment: no transport header in it
        writers[fragments.owner(ident) if fragments else 'other'] += len(packet)
        return
    last = _count_datagram(packet, ihl, proto, writers, samples)
    if frag & 0x2000 and fragments is not None:  # more fragments follow
        fragments.first(ident, last)


def _count_datagram(packet: bytes, ihl: int, proto: int, writers: Counter,
                    samples: Counter) -> object:
    """Count a datagram (or its first fragment); returns the key its last bytes went to."""
    if proto not in (6, 17) or len(packet) < ihl + 8:
        writers['other'] += len(packet)
        return 'other'
    ports = struct.unpack_from('!HH', packet, ihl)
    payload = memoryview(packet)[ihl + 8:]
    if proto == 6 or len(payload) < 20 or bytes(payload[:4]) != _RTPS:
        conn = _connection(proto, ports)
        writers[conn] += len(packet)
        return conn
    prefix = bytes(payload[8:20])
    user = 0
    last: object = PROTOCOL
    pos = 20
    while pos + 4 <= len(payload):
        kind, flags = payload[pos], payload[pos + 1]
        (length,) = struct.unpack_from('<H' if flags & 1 else '>H', payload, pos + 2)
        end = len(payload) if length == 0 else pos + 4 + length  # 0: up to the end
        if kind == _INFO_SRC and pos + 24 <= len(payload):
            prefix = bytes(payload[pos + 12:pos + 24])
        elif kind in (_DATA, _DATA_FRAG) and pos + 16 <= len(payload):
            writer = prefix + bytes(payload[pos + 12:pos + 16])
            size = min(end, len(payload)) - pos
            key = DISCOVERY if writer[15] & 0xC0 == 0xC0 else writer  # builtin entity kinds
            writers[key] += size
            user += size
            last = key
            first = True
            if kind == _DATA_FRAG and pos + 28 <= len(payload):
                (start,) = struct.unpack_from('<I' if flags & 1 else '>I', payload, pos + 24)
                first = start == 1
            if first:
                samples[key] += 1
        pos = end
    writers[PROTOCOL] += len(packet) - user
    return last


def _name(key: object, topic_of: dict[bytes, str], services: dict[int, str]) -> str:
    """What a counter key is called in the table: a writer's topic, a connection's service
    (either port named) or 'proto:A:B', or the label itself."""
    if isinstance(key, bytes):
        return topic_of.get(key, UNLISTED)
    if isinstance(key, tuple):
        proto, lo, hi = key
        return services.get(lo) or services.get(hi) or f'{proto}:{lo}:{hi}'
    return str(key)


def by_topic(writers: Counter, samples: Counter, gids: dict[str, list[str]],
             seconds: float, services: dict[int, str] | None = None
             ) -> dict[str, dict[str, float]]:
    """Per topic (and per label for the rest): kbit/s, samples (and per s), bytes per sample.

    gids: topic -> hex endpoint GIDs of its writers (the first 16 bytes are the GUID).
    services: port -> name for other traffic (e.g. a database's port); its connections,
    whatever their client ports, count under that name.
    """
    topic_of = {bytes.fromhex(g[:32]): topic for topic, gs in gids.items() for g in gs}
    total: Counter = Counter()
    count: Counter = Counter()
    for key, n in writers.items():
        name = _name(key, topic_of, services or {})
        total[name] += n
        count[name] += samples.get(key, 0)
    seconds = max(seconds, 1e-9)
    return {name: {'kbit_per_s': round(n * 8 / 1e3 / seconds, 2), 'samples': count[name],
                   'samples_per_s': round(count[name] / seconds, 2),
                   'bytes_per_sample': round(n / count[name]) if count[name] else None}
            for name, n in sorted(total.items(), key=lambda kv: -kv[1])}
