"""Link traffic per DDS writer: RTPS submessages laid out as the RTPS 2.x specification says."""
from __future__ import annotations

from collections import Counter
import struct

from sage_bench.rtps_traffic import (DISCOVERY, PROTOCOL, UNLISTED, Fragments, by_topic,
                                     count_packet)

PREFIX = bytes.fromhex('010f78fd161ba4dc00000000')
OTHER = bytes.fromhex('010f11112222333300000000')
TEXT_WRITER = bytes.fromhex('00001303')
SPDP_WRITER = bytes.fromhex('000100c2')


def _ip(proto: int, payload: bytes, ports=(7410, 7411)) -> bytes:
    head = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, proto, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return head + struct.pack('!HHHH', ports[0], ports[1], 8 + len(payload), 0) + payload


def _fragment(datagram: bytes, mtu: int = 1500) -> list[bytes]:
    """Split an IPv4 datagram as a router would (offsets in 8-byte units, MF on all but
    the last); the identification field is 0x1234."""
    body, step = datagram[20:], (mtu - 20) // 8 * 8
    out = []
    for off in range(0, len(body), step):
        chunk = body[off:off + step]
        flags = (0x2000 if off + step < len(body) else 0) | (off // 8)
        out.append(struct.pack('!BBHHHBBH', 0x45, 0, 20 + len(chunk), 0x1234, flags, 64,
                               datagram[9], 0) + datagram[12:20] + chunk)
    return out


def _sub(kind: int, body: bytes, little: bool = True) -> bytes:
    return struct.pack('<BBH' if little else '>BBH', kind, 1 if little else 0, len(body)) + body


def _data(writer: bytes, payload: bytes, little: bool = True) -> bytes:
    sn = struct.pack('<iI' if little else '>iI', 0, 1)
    return _sub(0x15, struct.pack('<HH' if little else '>HH', 0, 16) + bytes(4) + writer + sn
                + payload, little)


def _frag(writer: bytes, start: int, payload: bytes) -> bytes:
    sn = struct.pack('<iI', 0, 7)
    return _sub(0x16, struct.pack('<HH', 0, 28) + bytes(4) + writer + sn
                + struct.pack('<IHHI', start, 1, 1000, 2000) + payload)


def _rtps(prefix: bytes, *subs: bytes) -> bytes:
    return b'RTPS' + bytes([2, 3, 1, 15]) + prefix + b''.join(subs)


def test_data_bytes_go_to_their_writer_and_the_rest_to_protocol():
    info_ts = _sub(0x09, bytes(8))
    heartbeat = _sub(0x07, bytes(28))
    packet = _ip(17, _rtps(PREFIX, info_ts, _data(TEXT_WRITER, bytes(100)), heartbeat))
    writers, samples = Counter(), Counter()
    count_packet(packet, writers, samples)
    data_len = 4 + 20 + 100
    assert writers[PREFIX + TEXT_WRITER] == data_len
    assert samples[PREFIX + TEXT_WRITER] == 1
    assert writers[PROTOCOL] == len(packet) - data_len
    assert sum(writers.values()) == len(packet)


def test_big_endian_info_src_fragments_discovery_tcp_and_other_udp():
    writers, samples = Counter(), Counter()
    # INFO_SRC switches the GUID prefix of the submessages after it
    src = _sub(0x0c, bytes(4) + bytes([2, 3, 1, 15]) + OTHER, little=False)
    count_packet(_ip(17, _rtps(PREFIX, src, _data(TEXT_WRITER, bytes(40), little=False))),
                 writers, samples)
    assert writers[OTHER + TEXT_WRITER] == 4 + 20 + 40 and PREFIX + TEXT_WRITER not in writers
    # a sample in three fragments is one sample
    for start in (1, 2, 3):
        count_packet(_ip(17, _rtps(PREFIX, _frag(TEXT_WRITER, start, bytes(1000)))),
                     writers, samples)
    assert samples[PREFIX + TEXT_WRITER] == 1
    assert writers[PREFIX + TEXT_WRITER] == 3 * (4 + 32 + 1000)
    count_packet(_ip(17, _rtps(PREFIX, _data(SPDP_WRITER, bytes(300)))), writers, samples)
    assert writers[DISCOVERY] == 4 + 20 + 300 and samples[DISCOVERY] == 1
    tcp = _ip(6, bytes(60), ports=(40000, 5432))
    count_packet(tcp, writers, samples)
    assert writers[('tcp', 5432, 40000)] == len(tcp)
    udp = _ip(17, b'not rtps at all', ports=(53, 50000))
    count_packet(udp, writers, samples)
    assert writers[('udp', 53, 50000)] == len(udp)


def test_by_topic_maps_writer_guids_with_the_graph_gids():
    writers = Counter({PREFIX + TEXT_WRITER: 2000, OTHER + TEXT_WRITER: 500, PROTOCOL: 1000,
                       ('tcp', 5432, 40000): 300, ('tcp', 5432, 40002): 100,
                       ('udp', 53, 50000): 50})
    samples = Counter({PREFIX + TEXT_WRITER: 10, OTHER + TEXT_WRITER: 5})
    gids = {'/sage/text/in': [(PREFIX + TEXT_WRITER).hex() + '00' * 8]}  # Humble pads to 24
    table = by_topic(writers, samples, gids, seconds=2.0, services={5432: 'database'})
    assert table['/sage/text/in'] == {'kbit_per_s': 8.0, 'samples': 10, 'samples_per_s': 5.0,
                                      'bytes_per_sample': 200}
    assert table[UNLISTED]['samples_per_s'] == 2.5
    assert table[PROTOCOL] == {'kbit_per_s': 4.0, 'samples': 0, 'samples_per_s': 0.0,
                               'bytes_per_sample': None}
    # both connections to the named port count under its name, whatever their client ports
    assert table['database']['kbit_per_s'] == 1.6 and table['udp:53:50000']['kbit_per_s'] == 0.2
    assert list(table) == ['/sage/text/in', PROTOCOL, UNLISTED, 'database', 'udp:53:50000']


def test_ip_fragments_after_the_first_go_to_the_sample_they_carry():
    latent = _ip(17, _rtps(PREFIX, _sub(0x09, bytes(8)), _data(TEXT_WRITER, bytes(3000))))
    pieces = _fragment(latent)
    assert len(pieces) == 3 and sum(len(p) for p in pieces) == len(latent) + 2 * 20
    writers, samples, fragments = Counter(), Counter(), Fragments()
    for piece in pieces:
        count_packet(piece, writers, samples, fragments)
    assert samples[PREFIX + TEXT_WRITER] == 1
    assert sum(writers.values()) == sum(len(p) for p in pieces)
    # the first piece's IP, UDP, RTPS and INFO_TS headers are protocol; the later pieces,
    # IP headers included, exist for the sample alone
    header_bytes = 20 + 8 + 20 + 12
    assert writers[PREFIX + TEXT_WRITER] == sum(len(p) for p in pieces) - header_bytes
    # without the fragment memory, the pieces after the first are not credited to a port
    writers, samples = Counter(), Counter()
    for piece in pieces:
        count_packet(piece, writers, samples)
    assert set(writers) == {PREFIX + TEXT_WRITER, PROTOCOL, 'other'}
