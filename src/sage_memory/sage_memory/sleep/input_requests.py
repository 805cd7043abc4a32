"""Asks the encoders for what they encoded of each stored experience (rclpy shell part).

Sleep retrains the encoders on the day's attended inputs and the context stored around them,
so the memory node keeps each stored vision or audio row's encoder input beside it
(sage_memory.store.training_inputs). The
encoders hold only a short ring of their newest inputs: the request goes out when the policy
decides to store, not after the commit, and an answer that does not come within the timeout
is given up (counted, never retried: the input has left the ring by then).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
import time
from typing import Any

from rclpy.node import Node
from sage_interfaces.srv import EncoderInput

from sage_common.convert import set_stamp
from sage_common.health import Health
from sage_common.vocabulary import Topic
from sage_memory.store.models import ExperienceRecord
from sage_memory.store.training_inputs import TrainingInput, wants_input


@dataclass
class _Pending:
    record: ExperienceRecord
    future: Any
    deadline: float


def training_input_from_response(rec: ExperienceRecord, resp: Any) -> TrainingInput:
    """The stored form of an encoder's answer for one experience."""
    return TrainingInput(
        uuid=rec.uuid, modality=rec.modality, stamp=rec.stamp, salience=rec.salience,
        format=resp.format, data=bytes(resp.data), width=int(resp.width),
        height=int(resp.height), sample_rate=int(resp.sample_rate), samples=int(resp.samples),
        # A summary-fidelity row keeps no codebook size: its grid can be re-encoded from data.
        codes_initial=rec.codes_initial if rec.codebook_size else None,
        codebook_size=rec.codebook_size,
        created_at=time.time())


class InputRequester:
    """One EncoderInput client per modality; answers go to `submit`.

    context: also ask for the inputs of context rows (`wants_input`).
    """

    def __init__(self, node: Node, modalities: Iterable[str], timeout_s: float,
                 submit: Callable[[TrainingInput], None], health: Health,
                 clock: Callable[[], float] = time.monotonic, context: bool = False) -> None:
        self.clients = {m: node.create_client(EncoderInput, Topic.encoder_input(m))
                        for m in modalities}
        self.context = bool(context)
        self.timeout_s = float(timeout_s)
        self.submit = submit
        self.health = health
        self.clock = clock
        self.pending: list[_Pending] = []

    def request(self, records: Iterable[ExperienceRecord]) -> None:
        """Ask for the input of every stored experience (and context row, with context) of
        a served modality."""
        for rec in records:
            client = self.clients.get(rec.modality)
            if client is None or not wants_input(rec.kind, self.context):
                continue
            if not client.service_is_ready():  # encoder absent (other host, stopped)
                self.health.count('training_input_unavailable')
                continue
            req = EncoderInput.Request()
            set_stamp(req, rec.stamp)  # the request's own stamp field, like a header's
            req.input_seq = int(rec.input_seq)
            self.pending.append(_Pending(rec, client.call_async(req),
                                         self.clock() + self.timeout_s))
            self.health.count('training_inputs_asked')

    def poll(self) -> None:
        """Submit the answers that came; give up on those past their deadline."""
        now = self.clock()
        waiting = []
        for p in self.pending:
            if p.future.done():
                self._answered(p)
            elif now > p.deadline:
                p.future.cancel()
                self.health.count('training_input_timeouts')
            else:
                waiting.append(p)
        self.pending = waiting

    def _answered(self, p: _Pending) -> None:
        resp = p.future.result()
        if resp is None or not resp.found:
            self.health.count('training_input_missed')
            if resp is not None:
                self.health.values['training_input_last_miss'] = resp.message
            return
        self.submit(training_input_from_response(p.record, resp))
        self.health.count('training_inputs_requested')
