"""Language encoder node: /sage/text/in (TextInput) -> /sage/language/latent.

With remote_first.enabled (the edge of a two-host graph) it lets another host's encoder
answer first and encodes a text only when no latent for it came in time (remote_first.py).
"""
from __future__ import annotations

from collections.abc import Mapping
import sys
from typing import Any

from sage_common.convert import latent_to_msg
from sage_common.ros import RELIABLE_QOS, run, stamp_sec
from sage_common.vocabulary import Topic
from sage_interfaces.msg import Latent, TextInput

from sage_encoders.language_core import LanguageEncoderCore
from sage_encoders.language_encoder_params import PARAMS, validate
from sage_encoders.node_base import EncoderNodeBase
from sage_encoders.remote_first import RemoteFirst

REMOTE_CHECK_S = 0.02  # how often texts past their deadline are looked for


def stamp_key(stamp: Any) -> int:
    """A stamp in whole milliseconds: latents carry stamps as float seconds (~0.2 us off)."""
    return round(int(stamp.sec) * 1000 + int(stamp.nanosec) / 1e6)


class LanguageEncoderNode(EncoderNodeBase):
    """Embeds operator/ASR text with MiniLM."""

    def __init__(self, name: str = 'language_encoder', **node_kwargs: Any) -> None:
        super().__init__(name, PARAMS, validate, with_budget=False, **node_kwargs)
        self.pub = self.create_publisher(Latent, Topic.LANGUAGE_LATENT, RELIABLE_QOS)
        self.create_subscription(TextInput, Topic.TEXT_IN, self._on_text, RELIABLE_QOS)
        self.remote: RemoteFirst | None = None
        if self.values['remote_first.enabled']:
            v = self.values
            self.remote = RemoteFirst(
                deadline_s=float(v['remote_first.deadline_s']),
                trust_rate=float(v['remote_first.trust_rate']),
                min_trust=float(v['remote_first.min_trust']),
                probe_every=int(v['remote_first.probe_every']))
            self._own: set[int] = set()
            self.create_subscription(Latent, Topic.LANGUAGE_LATENT, self._on_latent,
                                     RELIABLE_QOS)
            self.create_timer(REMOTE_CHECK_S, self._encode_due)

    def make_core(self, values: Mapping[str, Any]) -> LanguageEncoderCore:
        return LanguageEncoderCore.from_params(values, log=self.log_line)

    def _on_text(self, msg: TextInput) -> None:
        if not self.accept():
            return
        if self.remote is None:
            self._encode(msg)
            return
        for text in self.remote.offer(stamp_key(msg.header.stamp), msg, self._now()):
            self._encode(text)
        self._report_remote()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_latent(self, msg: Latent) -> None:
        key = stamp_key(msg.header.stamp)
        if key in self._own:
            self._own.discard(key)  # our own latent, heard back
            return
        self.remote.answered(key)
        self._report_remote()

    def _encode_due(self) -> None:
        due = self.remote.due(self._now())
        for text in due:
            self._encode(text)
        if due:
            self._report_remote()

    def _report_remote(self) -> None:
        v = self.health.values
        v['remote_trust'] = f'{self.remote.trust:.2f}'
        for name, count in self.remote.counts.items():
            v[name] = str(count)

    def _encode(self, msg: TextInput) -> None:
        if self.remote is not None:
            self._own.add(stamp_key(msg.header.stamp))
        rec = self.guarded('text', lambda: self.core.encode(msg.text, stamp_sec(msg), self.seq))
        if rec is None:
            return
        self.seq += 1
        self.pub.publish(latent_to_msg(rec, msg.header.frame_id))
        self.after_encode(rec)


def main(args: list[str] | None = None) -> int:
    """Entry point (sage launch / ros2 run)."""
    return run(lambda: LanguageEncoderNode(), args)


if __name__ == '__main__':
    sys.exit(main())
