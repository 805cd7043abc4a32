"""Audio encoder node: /sage/audio/frames -> /sage/audio/latent (one latent per window hop)."""
from __future__ import annotations

from collections.abc import Mapping
import sys
from typing import Any

from sage_common.convert import latent_to_msg
from sage_common.health import Level
from sage_common.ros import RELIABLE_QOS, run, sensor_qos, stamp_sec
from sage_common.vocabulary import Topic
from sage_interfaces.msg import AudioFrame, Latent

from sage_encoders.audio_core import AudioEncoderCore
from sage_encoders.audio_encoder_params import PARAMS, validate
from sage_encoders.node_base import EncoderNodeBase
from sage_encoders.preprocess import pcm_from_bytes
from sage_encoders.refine_worker import SALIENCE_FIRST


class AudioEncoderNode(EncoderNodeBase):
    """Buffers AudioFrames and encodes ~1 s log-mel windows."""

    def __init__(self, name: str = 'audio_encoder', **node_kwargs: Any) -> None:
        super().__init__(name, PARAMS, validate, follow_models='audio', **node_kwargs)
        self.pub = self.create_publisher(Latent, Topic.AUDIO_LATENT, RELIABLE_QOS)
        self.early = self.initial_publisher('audio')
        self.refiner = self.refine_worker(self._publish_refined)
        self.create_subscription(AudioFrame, Topic.AUDIO_FRAMES, self._on_frame,
                                 sensor_qos(int(self.values['frame_queue_depth'])))
        self.serve_inputs('audio')

    def make_core(self, values: Mapping[str, Any]) -> AudioEncoderCore:
        return AudioEncoderCore.from_params(values, log=self.log_line)

    def _on_frame(self, msg: AudioFrame) -> None:
        if not self.accept():
            return

        def encode() -> Any:
            pcm = pcm_from_bytes(msg.data, msg.encoding, msg.channels)
            if self.refiner is None:
                return self.core.push(pcm, stamp_sec(msg), msg.sample_rate,
                                      self.account.available(), self.early)
            # each completed window begun here (refinement steps wait meanwhile), refined on
            # the refiner's thread
            with SALIENCE_FIRST.busy():
                return self.core.begin_block(pcm, stamp_sec(msg), msg.sample_rate, self.early)

        self.frame_id = msg.header.frame_id
        out = self.guarded('audio frame', encode)
        for item in out or ():
            if self.refiner is not None:
                self.refiner.submit((item, msg.header.frame_id))
            else:
                self._publish_refined(item, msg.header.frame_id)
        self.health.values['buffer_restarts'] = str(self.core.gaps)
        self.health.values['lost_samples_filled'] = str(self.core.filled_samples)
        self.health.values['late_samples_dropped'] = str(self.core.late_samples)
        voice = self._voice_state()
        if voice != self.health.values.get('voice') and voice.startswith('off'):
            self.health.problem(Level.WARN, f'voice activity {voice}')
        self.health.values['voice'] = voice

    def _publish_refined(self, rec: Any, frame_id: str) -> None:
        self.pub.publish(latent_to_msg(rec, frame_id))
        self.after_encode(rec)

    def _voice_state(self) -> str:
        """'on', 'disabled' (voice.enabled false) or 'off: why' for /diagnostics."""
        if not self.core.cfg.voice:
            return 'disabled'
        return f'off: {self.core.voice_error}' if self.core.voice_error else 'on'


def main(args: list[str] | None = None) -> int:
    """Entry point (sage launch / ros2 run)."""
    return run(lambda: AudioEncoderNode(), args)


if __name__ == '__main__':
    sys.exit(main())
