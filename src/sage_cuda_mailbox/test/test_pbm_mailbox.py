"""PBM through the Python facade: order, policies, loans, bad input, segment validation."""
from __future__ import annotations

import os
import stat
import struct
import threading
import time

import numpy as np
import pytest

from sage_cuda_mailbox import (BadInput, SegmentError, UsedAfterFork, attach_pbm, create_pbm,
                               exists)

RECORD = struct.Struct('<Q')


@pytest.mark.parametrize('policy', ['reject', 'overwrite'])
def test_records_come_out_in_the_order_they_went_in(segment_name: str, policy: str) -> None:
    pbm = create_pbm(segment_name, record_size=8, capacity=64, policy=policy)
    consumer = pbm.consumer()
    producer = pbm.producer()
    for i in range(50):
        assert producer.push(RECORD.pack(i * 7)) is True
    got = []
    while (raw := consumer.pop()) is not None:
        got.append(RECORD.unpack(raw)[0])
    assert got == [i * 7 for i in range(50)]
    assert consumer.stats()['delivered'] == 50


@pytest.mark.parametrize('policy', ['reject', 'overwrite'])
def test_every_consumer_gets_its_own_copy_of_every_record(segment_name: str,
                                                          policy: str) -> None:
    pbm = create_pbm(segment_name, record_size=8, capacity=16, policy=policy)
    consumers = [pbm.consumer() for _ in range(3)]
    producer = pbm.producer()
    for i in range(10):
        producer.push(RECORD.pack(i))
    for c in consumers:
        assert [RECORD.unpack(c.pop())[0] for _ in range(10)] == list(range(10))
        assert c.pop() is None


def test_a_full_reject_mailbox_refuses_instead_of_blocking(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=8, capacity=4, policy='reject')
    consumer = pbm.consumer()
    producer = pbm.producer()
    assert all(producer.push(RECORD.pack(i)) for i in range(4))
    assert producer.push(RECORD.pack(4)) is False
    assert pbm.stats()['rejected'] == 1
    assert consumer.pop() == RECORD.pack(0)
    assert producer.push(RECORD.pack(4)) is True


def test_a_consumer_that_stops_reading_never_blocks_overwrite_producers(
        segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=8, capacity=8, policy='overwrite')
    stalled = pbm.consumer()
    producer = pbm.producer()
    assert all(producer.push(RECORD.pack(i)) for i in range(1000))
    got = []
    while (raw := stalled.pop()) is not None:
        got.append(RECORD.unpack(raw)[0])
    assert got[-1] == 999
    assert got == sorted(got)
    stats = stalled.stats()
    assert stats['lost'] + stats['delivered'] + stats['torn'] == 1000


def test_wrong_record_sizes_are_refused_with_a_clear_error(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=8, capacity=4)
    producer = pbm.producer()
    consumer = pbm.consumer()
    with pytest.raises(BadInput, match='record_size 8') as err:
        producer.push(b'123456789')
    assert err.value.code == 'wrong_size'
    with pytest.raises(BadInput):
        producer.push(b'')
    with pytest.raises(BadInput):
        consumer.pop_into(bytearray(4))
    with pytest.raises(BadInput):
        producer.push_many(np.zeros(12, np.uint8))


def test_bad_geometry_and_names_are_refused(segment_name: str) -> None:
    with pytest.raises(BadInput, match='power of two'):
        create_pbm(segment_name, record_size=8, capacity=100)
    with pytest.raises(BadInput, match='record_size'):
        create_pbm(segment_name, record_size=0, capacity=8)
    with pytest.raises(BadInput, match="policy must be 'reject' or 'overwrite'"):
        create_pbm(segment_name, record_size=8, capacity=8,
                   policy='drop')  # type: ignore[arg-type]
    with pytest.raises(BadInput, match='may only hold'):
        create_pbm('bad/name', record_size=8, capacity=8)
    assert not exists(segment_name)


def test_loaned_records_are_sent_or_skipped(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=16, capacity=8)
    consumer = pbm.consumer()
    producer = pbm.producer()
    loan = producer.loan()
    assert loan is not None
    memoryview(loan)[:4] = b'drop'
    loan.abort()
    loan = producer.loan()
    assert loan is not None
    memoryview(loan)[:4] = b'keep'
    loan.send(4)
    assert consumer.pop() == b'keep'
    assert consumer.stats()['abandoned'] == 1
    with pytest.raises(BadInput):
        loan.send()


def test_batches_move_whole_records(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=4, capacity=16)
    consumer = pbm.consumer()
    producer = pbm.producer()
    records = np.arange(40, dtype=np.uint32).view(np.uint8).reshape(40, 4)
    assert producer.push_many(records) == 16  # the ring holds 16: the rest is refused
    out = np.zeros((32, 4), np.uint8)
    assert consumer.pop_many(out) == 16
    assert out[:16].view(np.uint32).ravel().tolist() == list(range(16))


def test_pop_wait_wakes_when_a_record_arrives(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=8, capacity=8)
    consumer = pbm.consumer()
    assert consumer.pop_wait(0.02) is None

    def later() -> None:
        time.sleep(0.05)
        pbm.producer().push(RECORD.pack(5))

    thread = threading.Thread(target=later)
    thread.start()
    raw = consumer.pop_wait(5.0)
    thread.join()
    assert raw == RECORD.pack(5)


def test_segments_are_readable_by_their_user_only(segment_name: str) -> None:
    create_pbm(segment_name, record_size=8, capacity=8)
    mode = os.stat(f'/dev/shm/{segment_name}').st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_attaching_to_a_missing_segment_is_a_segment_error(segment_name: str) -> None:
    with pytest.raises(SegmentError, match='no mailbox segment') as err:
        attach_pbm(segment_name)
    assert err.value.code == 'not_found'


def test_a_segment_of_another_geometry_is_refused(segment_name: str) -> None:
    create_pbm(segment_name, record_size=8, capacity=8, mode='create_or_attach')
    same = create_pbm(segment_name, record_size=8, capacity=8, mode='create_or_attach')
    assert not same.created
    with pytest.raises(SegmentError, match='exists as') as err:
        create_pbm(segment_name, record_size=16, capacity=8, mode='create_or_attach')
    assert err.value.code == 'layout_mismatch'
    with pytest.raises(SegmentError) as err:
        create_pbm(segment_name, record_size=8, capacity=8)
    assert err.value.code == 'already_exists'


def test_a_corrupt_segment_is_refused_cleanly(segment_name: str) -> None:
    with open(f'/dev/shm/{segment_name}', 'wb') as f:
        f.write(b'\x5a' * 8192)
    with pytest.raises(SegmentError, match='bad magic') as err:
        attach_pbm(segment_name)
    assert err.value.code == 'corrupt'


def test_a_damaged_header_is_refused(segment_name: str) -> None:
    create_pbm(segment_name, record_size=8, capacity=8)
    with open(f'/dev/shm/{segment_name}', 'r+b') as f:
        f.seek(48)  # capacity field: covered by the header checksum
        f.write(struct.pack('<I', 4096))
    with pytest.raises(SegmentError, match='checksum'):
        attach_pbm(segment_name)


def test_a_handle_inherited_through_fork_refuses_to_work(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=8, capacity=8)
    producer = pbm.producer()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            producer.push(RECORD.pack(1))
            code = 1
        except UsedAfterFork:
            code = 0
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert producer.push(RECORD.pack(1)) is True
