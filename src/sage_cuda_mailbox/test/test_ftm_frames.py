"""Frames through the FTM facade: zero copy, descriptors, stale frames, leases, bad input."""
from __future__ import annotations

import gc
import os

import numpy as np
import pytest
import torch

from sage_cuda_mailbox import (BadInput, FrameReader, FrameWriter, MailboxBusy, SegmentError,
                               StaleFrame, create_ftm, cuda_available)
from sage_interfaces.msg import FrameRef


def frame(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_written_frame_is_read_in_place_without_a_copy(segment_name: str) -> None:
    with FrameWriter(segment_name, slots=3, max_bytes=48 * 64 * 3) as writer:
        image = frame()
        desc = writer.write(image, stamp=12.5)
        reader = FrameReader(segment_name)
        view = reader.read_view(desc.slot, desc.sequence)
        array = np.asarray(view)
        assert np.array_equal(array, image)
        assert array.__array_interface__['data'][0] == view.address
        assert not array.flags.writeable
        tensor = torch.from_dlpack(view)
        assert tensor.data_ptr() == view.address
        assert torch.equal(tensor, torch.from_numpy(image))
        assert view.meta['stamp'] == 12.5


def test_the_descriptor_fills_a_frameref_that_reads_back(segment_name: str) -> None:
    with FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 3) as writer:
        image = frame(seed=3)
        desc = writer.write(image, stamp=1.0)
        assert (desc.width, desc.height, desc.step, desc.encoding) == (64, 48, 192, 'rgb8')
        ref = FrameRef(segment=desc.segment, slot=desc.slot, sequence=desc.sequence,
                       width=desc.width, height=desc.height, step=desc.step,
                       encoding=desc.encoding)
        got = FrameReader(segment_name).read_ref(ref)
        assert np.array_equal(got, image)


def test_a_descriptor_whose_slot_moved_on_raises_stale_frame(segment_name: str) -> None:
    with FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 3) as writer:
        first = writer.write(frame(), 0.0)
        writer.write(frame(), 0.0)
        writer.write(frame(), 0.0)
        reader = FrameReader(segment_name)
        with pytest.raises(StaleFrame, match='descriptor wants sequence'):
            reader.read(first.slot, first.sequence)
        with pytest.raises(StaleFrame):
            reader.read_copy(first.slot, first.sequence)


def test_impossible_descriptors_are_refused(segment_name: str) -> None:
    with FrameWriter(segment_name, slots=2, max_bytes=100):
        reader = FrameReader(segment_name)
        with pytest.raises(BadInput, match='out of range'):
            reader.read(5, 1)
        with pytest.raises(BadInput):
            reader.read(-1, 1)
        with pytest.raises(BadInput, match='invalid'):
            reader.read(0, 0)
        ref = FrameRef(segment='another', slot=0, sequence=1, width=1, height=1,
                       encoding='rgb8')
        with pytest.raises(BadInput, match='another'):
            reader.read_ref(ref)


@pytest.mark.parametrize('bad, message', [
    (np.zeros((48, 64, 4), np.uint8), r'rgb8 frame must be \(height, width, 3\) uint8'),
    (np.zeros((48, 64, 3), np.float32), 'float32'),
    (np.zeros((48, 64), np.uint8), r'\(48, 64\)'),
    ([[1, 2, 3]], 'numpy array'),
])
def test_frames_of_the_wrong_shape_or_dtype_are_refused(segment_name: str, bad: object,
                                                        message: str) -> None:
    with FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 4 * 4) as writer:
        with pytest.raises(BadInput, match=message):
            writer.write(bad, 0.0)  # type: ignore[arg-type]


def test_a_frame_larger_than_the_slots_is_refused(segment_name: str) -> None:
    with FrameWriter(segment_name, slots=2, max_bytes=1000) as writer:
        with pytest.raises(BadInput, match='holds at most 1000'):
            writer.write(frame(), 0.0)


def test_an_unknown_encoding_is_refused(segment_name: str) -> None:
    with pytest.raises(BadInput, match='yuv'):
        FrameWriter(segment_name, encoding='yuv')


def test_a_reader_holding_every_slot_makes_the_writer_busy_not_blocked(
        segment_name: str) -> None:
    with FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 3) as writer:
        reader = FrameReader(segment_name, lease_ms=10000)
        a = writer.write(frame(), 0.0)
        b = writer.write(frame(), 0.0)
        held = [reader.read(a.slot, a.sequence), reader.read(b.slot, b.sequence)]
        with pytest.raises(MailboxBusy, match='leased'):
            writer.write(frame(), 0.0)
        del held
        gc.collect()
        writer.write(frame(), 0.0)  # dropping the views gave the slots back


def test_a_held_view_is_never_overwritten(segment_name: str) -> None:
    with FrameWriter(segment_name, slots=3, max_bytes=48 * 64 * 3) as writer:
        reader = FrameReader(segment_name, lease_ms=10000)
        original = frame(seed=1)
        first = writer.write(original, 0.0)
        view = reader.read(first.slot, first.sequence)
        for i in range(20):
            assert writer.write(frame(seed=100 + i), 0.0).slot != first.slot
        assert np.array_equal(view, original)


def test_read_copy_returns_an_owned_writable_array(segment_name: str) -> None:
    with FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 3) as writer:
        image = frame(seed=2)
        desc = writer.write(image, 0.0)
        copy = FrameReader(segment_name).read_copy(desc.slot, desc.sequence)
        copy[0, 0, 0] ^= 0xFF
        assert np.array_equal(FrameReader(segment_name).read(desc.slot, desc.sequence), image)


def test_a_restarted_writer_with_a_new_size_replaces_the_segment(segment_name: str) -> None:
    reader_desc = None
    with FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 3, unlink_on_close=False) as w:
        reader_desc = w.write(frame(), 0.0)
    reader = FrameReader(segment_name)
    reader.read(reader_desc.slot, reader_desc.sequence)
    with FrameWriter(segment_name, slots=2, max_bytes=96 * 128 * 3) as bigger:
        big = frame(96, 128, seed=4)
        desc = bigger.write(big, 0.0)
        assert desc.sequence > reader_desc.sequence
        assert np.array_equal(reader.read(desc.slot, desc.sequence), big)  # follows by name
        with pytest.raises(StaleFrame):
            reader.read(reader_desc.slot, reader_desc.sequence)


def test_a_reader_without_a_writer_gets_a_segment_error(segment_name: str) -> None:
    with pytest.raises(SegmentError, match='no mailbox segment'):
        FrameReader(segment_name)


def test_tensors_keep_dtype_shape_and_strides(segment_name: str) -> None:
    ftm = create_ftm(segment_name, slots=2, max_bytes=4096)
    writer = ftm.writer()
    loan = writer.loan(24 * 4)
    data = np.frombuffer(loan, dtype=np.float32, count=24).reshape(2, 3, 4)
    data[...] = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    slot, sequence = loan.commit((2, 3, 4), 'float32', stamp=3.0)
    del data
    view = ftm.reader().acquire(slot, sequence)
    array = np.asarray(view)
    assert array.dtype == np.float32 and array.shape == (2, 3, 4)
    assert array[1, 2, 3] == 23.0
    assert torch.from_dlpack(view).sum().item() == float(sum(range(24)))
    with pytest.raises(BadInput, match='complex64'):
        writer.loan(8).commit((1,), 'complex64')


def test_a_reader_in_another_process_sees_the_frame(segment_name: str) -> None:
    with FrameWriter(segment_name, slots=2, max_bytes=48 * 64 * 3) as writer:
        image = frame(seed=9)
        desc = writer.write(image, 0.0)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            ok = np.array_equal(FrameReader(segment_name).read(desc.slot, desc.sequence), image)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize('backend', ['cpu', 'gpu'])
def test_registering_with_the_gpu_is_optional(segment_name: str, backend: str) -> None:
    if backend == 'gpu' and not cuda_available():
        pytest.skip('no CUDA device here: the CPU path is the one in use')
    ftm = create_ftm(segment_name, slots=2, max_bytes=64)
    assert ftm.register_with_gpu() is (backend == 'gpu')
    writer = ftm.writer()
    slot, sequence = writer.write(np.arange(16, dtype=np.uint8), 0.0)
    assert np.asarray(ftm.reader().acquire(slot, sequence)).tolist() == list(range(16))
