"""Language encoder node: /sage/text/in (TextInput) -> /sage/language/latent."""
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


class LanguageEncoderNode(EncoderNodeBase):
    """Embeds operator/ASR text with MiniLM."""

    def __init__(self, name: str = 'language_encoder', **node_kwargs: Any) -> None:
        super().__init__(name, PARAMS, validate, with_budget=False, **node_kwargs)
        self.pub = self.create_publisher(Latent, Topic.LANGUAGE_LATENT, RELIABLE_QOS)
        self.create_subscription(TextInput, Topic.TEXT_IN, self._on_text, RELIABLE_QOS)

    def make_core(self, values: Mapping[str, Any]) -> LanguageEncoderCore:
        return LanguageEncoderCore.from_params(values, log=self.log_line)

    def _on_text(self, msg: TextInput) -> None:
        if not self.accept():
            return
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
