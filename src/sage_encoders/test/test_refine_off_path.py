"""Refinement off the salience path: an input begun (its latent before refinement handed on)
and refined later, on another thread, while the next inputs are begun, gives the records the
one-call encode gives (what the offline replay runs); the refine worker never holds the
thread that begins inputs, keeps at most irp.queue inputs waiting and reports failures, and
its steps wait while an input is being begun; a model swapped in between begin and finish is
not refined with (its records spend no ATP)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from sage_common.irp import IrpResult, refine, refine_from
from sage_encoders.audio_core import AudioEncoderCore
from sage_encoders.data import demo_frame
from sage_encoders.model_files import PACKAGED_DIR
from sage_encoders.refine_worker import RefineWorker, SalienceFirst
from sage_encoders.vision_core import VisionEncoderCore

FIELDS = ('stamp', 'input_seq', 'iterations', 'halt_reason', 'atp_spent', 'energy_initial',
          'energy_final', 'recon_error', 'features', 'model_version', 'preview')


def _same(a, b) -> None:
    for f in FIELDS:
        assert getattr(a, f) == getattr(b, f), f
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.embedding, b.embedding)


class Halving:
    def init_state(self) -> float:
        return 1.0

    def step(self, state: float, iteration: int) -> float:
        return state * 0.5

    def energy(self, state: float) -> float:
        return state

    def halt(self, state: float) -> bool:
        return False


def test_refine_is_the_initial_state_then_refine_from() -> None:
    seen = []
    whole = refine(Halving(), 3.0, 1e-3, 2, 10, on_init=lambda s, e: seen.append(e))
    later = refine_from(Halving(), 1.0, 1.0, 3.0, 1e-3, 2, 10)
    assert seen == [1.0]
    assert isinstance(later, IrpResult) and later == whole
    assert (later.iterations, later.halt_reason, later.energy_final) == (3, 'budget', 0.125)
    with pytest.raises(ValueError):
        refine_from(Halving(), 1.0, 1.0, 3.0, 1e-3, 0, 10)


def _frames(n: int) -> list[np.ndarray]:
    # a scene that changes halfway, with sensor noise on every frame
    rng = np.random.default_rng(5)
    scenes = demo_frame(1, 480, 640), demo_frame(2, 480, 640)
    return [np.clip(scenes[i >= n // 2].astype(np.int16) + rng.integers(-3, 4, (480, 640, 3)),
                    0, 255).astype(np.uint8) for i in range(n)]


def test_vision_frames_begun_ahead_of_their_refinement_encode_as_in_one_call(
        vision_params) -> None:
    frames = _frames(8)
    one = VisionEncoderCore.from_params(vision_params)
    whole = [one.encode(f, 10.0 + i / 15, i, atp=3.0) for i, f in enumerate(frames)]
    split = VisionEncoderCore.from_params(vision_params)
    early: list = []
    pending = []
    for i, f in enumerate(frames):
        pending.append(split.begin(f, 10.0 + i / 15, i, early.append))
        f[:] = 0  # the caller's buffer (a mailbox slot) is reused once begin returns
        if i % 3 == 2:  # the refiner two frames behind, then caught up
            while pending:
                rec = split.finish(pending.pop(0), atp=3.0)
                _same(rec, whole[rec.input_seq])
    for p in pending:
        rec = split.finish(p, atp=3.0)
        _same(rec, whole[rec.input_seq])
    assert [e.input_seq for e in early] == list(range(len(frames)))
    assert sum(r.iterations for r in whole) > 0, 'refinement ran: the test compares something'
    for i in range(len(frames)):  # the kept training inputs too
        a, b = one.inputs.lookup(10.0 + i / 15, i), split.inputs.lookup(10.0 + i / 15, i)
        assert a.found and b.found and a.data == b.data


def test_audio_windows_begun_ahead_of_their_refinement_encode_as_in_one_call(
        audio_params) -> None:
    rng = np.random.default_rng(2)
    blocks = [(rng.normal(0, 400 if i < 50 else 3000, 512)).astype(np.int16)
              for i in range(90)]
    one = AudioEncoderCore.from_params(audio_params)
    whole = [r for i, b in enumerate(blocks)
             for r in one.push(b, 500.0 + i * 512 / 16000, 16000, atp=4.0)]
    split = AudioEncoderCore.from_params(audio_params)
    pending = []
    for i, b in enumerate(blocks):
        pending += split.begin_block(b, 500.0 + i * 512 / 16000, 16000)
    assert len(pending) == len(whole) >= 6
    for p in pending:  # all begun before the first is refined
        _same(split.finish(p, atp=4.0), whole[p.input_seq])


def test_a_frame_begun_before_a_model_swap_is_not_refined_with_the_gone_model(
        vision_params) -> None:
    core = VisionEncoderCore.from_params(vision_params)
    frames = _frames(2)
    core.encode(frames[0], 1.0, 0, atp=3.0)
    pending = core.begin(frames[1], 1.1, 1)
    core.use_model(PACKAGED_DIR)  # another version (here a copy) swapped in meanwhile
    rec = core.finish(pending, atp=3.0)
    assert (rec.iterations, rec.atp_spent) == (0, 0.0)
    assert rec.halt_reason in ('budget', 'target')
    again = core.encode(frames[1], 1.2, 2, atp=3.0)  # the new model refines the next ones
    assert again.model_version == rec.model_version


class Blocking:
    """A finish that waits for the test to release it, recording what it was given."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[tuple[int, float | None]] = []

    def __call__(self, item: int, atp: float | None) -> int:
        self.calls.append((item, atp))
        self.started.set()
        assert self.release.wait(10.0)
        if item < 0:
            raise ValueError('bad input')
        return item


def test_the_worker_refines_in_order_and_never_holds_the_submitting_thread() -> None:
    finish = Blocking()
    out: list[int] = []
    errors: list[Exception] = []
    all_done = threading.Event()

    def done(item: int) -> None:
        out.append(item)
        if item == 5:
            all_done.set()

    worker = RefineWorker(finish, lambda: 2.5, done, errors.append, depth=2, name='t_refine')
    try:
        worker.submit(1)
        assert finish.started.wait(10.0)  # 1 is being refined and held there
        for item in (-1, 2, 3, 4, 5):  # submitted while it is held: none waits for it
            worker.submit(item)
        # at most depth=2 wait for refinement: -1, 2 and 3 are finished without steps
        assert worker.unrefined == 3
        assert worker.backlog() == 5
        finish.release.set()
        assert all_done.wait(10.0)
    finally:
        worker.close()
    assert out == [1, 2, 3, 4, 5]
    assert [c for c in finish.calls] == [(1, 2.5), (-1, 0.0), (2, 0.0), (3, 0.0), (4, 2.5),
                                         (5, 2.5)]
    assert [str(e) for e in errors] == ['bad input']  # reported; the thread went on


class Counting(Halving):
    def __init__(self) -> None:
        self.steps = 0

    def step(self, state: float, iteration: int) -> float:
        self.steps += 1
        return super().step(state, iteration)


def test_refinement_steps_wait_while_an_input_is_being_begun() -> None:
    gate = SalienceFirst()
    plugin = Counting()
    waiting = threading.Event()

    def before_step() -> None:
        waiting.set()
        gate.wait_idle()

    result: list[IrpResult] = []
    with gate.busy():  # an input is being begun
        worker = threading.Thread(target=lambda: result.append(refine_from(
            plugin, 1.0, 1.0, 3.0, 1e-3, 2, 10, before_step=before_step)))
        worker.start()
        assert waiting.wait(10.0)
        assert plugin.steps == 0  # held before its first step
    worker.join(10.0)
    assert plugin.steps == 3 and result[0].iterations == 3
