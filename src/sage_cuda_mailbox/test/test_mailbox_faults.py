"""Cross-process stress and fault tests: 4 producer x 2 consumer processes, SIGKILLed writers.

The hot loops run natively (``_mailbox.testing``) with the GIL released, so these measure the
mailbox, not the interpreter. Counts are kept small enough for 2 shared cores; the C++ stress
test (ctest) pushes 4 x 10^6 records.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pytest

from sage_cuda_mailbox import (FrameReader, FrameWriter, StaleFrame, _mailbox, attach_ftm,
                               attach_pbm, create_pbm)

testing = _mailbox.testing
CTX = mp.get_context('fork')
PRODUCERS = 4
CONSUMERS = 2


def _consumer(name: str, expected: int, ready: Any, out: Connection) -> None:
    consumer = attach_pbm(name).consumer()
    ready.set()
    out.send(testing.consume_stress(consumer, PRODUCERS, expected, timeout_s=120.0, idle_s=1.0))


def _producer(name: str, tag: int, count: int, out: Connection) -> None:
    producer = attach_pbm(name).producer()
    out.send(testing.produce_stress(producer, tag, count, timeout_s=120.0))


def run_stress(name: str, policy: str, record_size: int, capacity: int,
               per_producer: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    create_pbm(name, record_size=record_size, capacity=capacity,
               policy=policy)  # type: ignore[arg-type]
    readies = [CTX.Event() for _ in range(CONSUMERS)]
    pipes = [CTX.Pipe(duplex=False) for _ in range(CONSUMERS + PRODUCERS)]
    consumers = [CTX.Process(target=_consumer,
                             args=(name, per_producer * PRODUCERS, readies[i], pipes[i][1]))
                 for i in range(CONSUMERS)]
    for p in consumers:
        p.start()
    for event in readies:
        assert event.wait(30)
    producers = [CTX.Process(target=_producer,
                             args=(name, t, per_producer, pipes[CONSUMERS + t][1]))
                 for t in range(PRODUCERS)]
    for p in producers:
        p.start()
    produced = [pipes[CONSUMERS + t][0].recv() for t in range(PRODUCERS)]
    consumed = [pipes[i][0].recv() for i in range(CONSUMERS)]
    for p in producers + consumers:
        p.join(30)
        assert p.exitcode == 0
    return produced, consumed


def test_reject_policy_loses_and_repeats_nothing_across_processes(segment_name: str) -> None:
    per_producer = 250_000  # 10^6 records, each delivered to both consumers
    produced, consumed = run_stress(segment_name, 'reject', 32, 1024, per_producer)
    assert [p['pushed'] for p in produced] == [per_producer] * PRODUCERS
    for c in consumed:
        assert c['delivered'] == per_producer * PRODUCERS
        assert c['per_producer'] == [per_producer] * PRODUCERS
        assert (c['corrupt'], c['duplicates'], c['gaps']) == (0, 0, 0)
        assert (c['lost'], c['torn'], c['abandoned']) == (0, 0, 0)


def test_overwrite_policy_never_delivers_a_torn_record(segment_name: str) -> None:
    per_producer = 20_000
    _, consumed = run_stress(segment_name, 'overwrite', 4096, 16, per_producer)
    for c in consumed:
        assert c['corrupt'] == 0
        assert c['duplicates'] == 0
        assert c['delivered'] > 0
        accounted = c['delivered'] + c['lost'] + c['torn'] + c['abandoned']
        assert accounted == per_producer * PRODUCERS


def _spawn_and_signal(target: Callable[..., None], *args: Any) -> mp.Process:
    ready = CTX.Event()
    proc = CTX.Process(target=target, args=(*args, ready))
    proc.start()
    assert ready.wait(30)
    return proc


def _loan_half_and_hang(name: str, ready: Any) -> None:
    loan = attach_pbm(name).producer().loan()
    assert loan is not None
    memoryview(loan)[:8] = b'halfdone'
    ready.set()
    time.sleep(60)


def _kill(proc: mp.Process) -> None:
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL


def test_a_producer_killed_mid_write_never_wedges_consumers(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=32, capacity=8, policy='reject')
    consumer = pbm.consumer()
    victim = _spawn_and_signal(_loan_half_and_hang, segment_name)
    producer = pbm.producer()
    producer.push(testing.make_record(1, 0, 32))
    assert consumer.pop() is None  # ticket 0 is mid-write by a live producer
    _kill(victim)
    got = []
    for i in range(1, 30):  # more than the ring: the dead slot must be recycled
        while not producer.push(testing.make_record(1, i, 32)):
            while (raw := consumer.pop_wait(0.2)) is not None:
                got.append(testing.check_record(raw))
    while (raw := consumer.pop()) is not None:
        got.append(testing.check_record(raw))
    assert got == [(1, i) for i in range(30)]
    assert consumer.stats()['abandoned'] == 1


def _push_forever(name: str, tag: int, ready: Any) -> None:
    producer = attach_pbm(name).producer()
    ready.set()
    testing.produce_stress(producer, tag, 10**12, timeout_s=60.0)


def test_producers_killed_at_random_moments_never_corrupt_a_record(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=64, capacity=32, policy='overwrite')
    consumer = pbm.consumer()
    rng = random.Random(5)
    bad = good = 0
    for round_ in range(8):
        victim = _spawn_and_signal(_push_forever, segment_name, round_)
        time.sleep(rng.uniform(0.001, 0.02))
        _kill(victim)
        while (raw := consumer.pop()) is not None:
            if testing.check_record(raw) is None:
                bad += 1
            else:
                good += 1
    survivor = pbm.producer()
    for i in range(5):
        assert survivor.push(testing.make_record(63, i, 64))
    tail = []
    while (raw := consumer.pop_wait(0.5)) is not None:
        checked = testing.check_record(raw)
        assert checked is not None
        tail.append(checked)
        if checked == (63, 4):
            break
    assert bad == 0 and good > 0
    assert [t for t in tail if t[0] == 63] == [(63, i) for i in range(5)]


def _hang_holding(name: str, ready: Any) -> None:
    consumer = attach_pbm(name).consumer()
    assert consumer is not None
    ready.set()
    time.sleep(60)


def test_a_dead_consumer_stops_holding_producers_back(segment_name: str) -> None:
    pbm = create_pbm(segment_name, record_size=8, capacity=4, policy='reject')
    victim = _spawn_and_signal(_hang_holding, segment_name)
    producer = pbm.producer()
    assert all(producer.push(bytes(8)) for _ in range(4))
    assert producer.push(bytes(8)) is False  # alive and not reading: refused, not blocked
    _kill(victim)
    deadline = time.monotonic() + 2.0
    while not producer.push(bytes(8)):
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert pbm.stats()['consumers'] == 0


def _frame_half_and_hang(name: str, ready: Any) -> None:
    loan = attach_ftm(name).writer().loan(48 * 64 * 3)
    np.frombuffer(loan, np.uint8)[:1000] = 0xEE
    ready.set()
    time.sleep(60)


def test_a_frame_writer_killed_mid_frame_never_exposes_the_half_frame(segment_name: str) -> None:
    writer = FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 3)
    image = np.full((48, 64, 3), 0x11, np.uint8)
    kept = writer.write(image, 1.0)
    victim = _spawn_and_signal(_frame_half_and_hang, segment_name)
    reader = FrameReader(segment_name)
    assert reader.latest() == (kept.slot, kept.sequence)
    _kill(victim)
    held = reader.read(kept.slot, kept.sequence)
    fresh = writer.write(image, 2.0)  # takes the dead writer's slot over
    assert fresh.slot != kept.slot
    assert np.array_equal(reader.read(fresh.slot, fresh.sequence), image)
    assert np.array_equal(held, image)
    writer.close()


def _read_and_hang(name: str, slot: int, sequence: int, ready: Any) -> None:
    reader = FrameReader(name, lease_ms=150)
    view = reader.read(slot, sequence)
    assert view is not None
    ready.set()
    time.sleep(60)


def test_a_reader_killed_holding_a_frame_frees_it_when_the_lease_ends(segment_name: str) -> None:
    writer = FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 3)
    image = np.zeros((48, 64, 3), np.uint8)
    a = writer.write(image, 0.0)
    b = writer.write(image, 0.0)
    victims = [_spawn_and_signal(_read_and_hang, segment_name, d.slot, d.sequence)
               for d in (a, b)]
    for v in victims:
        _kill(v)
    time.sleep(0.25)
    writer.write(image, 0.0)  # both leases expired with their dead reader
    with pytest.raises(StaleFrame):
        FrameReader(segment_name).read(a.slot, a.sequence)
    writer.close()
