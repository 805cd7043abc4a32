"""SNARC's inputs from a rosbag2 bag: the first half of the offline replay (`sage_eval.replay`).

`iter_inputs` reads a bag (MCAP or sqlite3) with rosbags, puts messages in header-stamp order
(a bounded reorder buffer over the bag's log-time order) and turns each into what SnarcCore
takes: images, audio and text encoded by the same encoder cores the live graph runs
(`Encoders`, with the recorded ATP budgets applied as the live encoder nodes take them), IMU
samples, rewards and metabolic states as records, recorded latents as they are.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
import heapq
import importlib
import math
from pathlib import Path
from typing import Any, Union

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.highlevel.anyreader import AnyReaderError

from sage_common.errors import SageError
from sage_common.params import resolve
from sage_common.records import grids, ImuRecord, LatentRecord, RewardRecord
from sage_encoders.budget import AtpAccount
from sage_eval.bagio import (AUDIO_TOPIC, BUDGET_TOPIC, CAMERA_TOPIC, IMU_TOPIC,
                              LATENT_TOPICS, REWARD_TOPIC, STATE_TOPIC, TEXT_TOPIC, typestore)
from sage_eval.errors import ReplayError

# Order of messages that share a stamp: state, budget and IMU first, rewards last.
TOPIC_RANK = {STATE_TOPIC: 0, BUDGET_TOPIC: 0, IMU_TOPIC: 1, CAMERA_TOPIC: 2, AUDIO_TOPIC: 3,
              TEXT_TOPIC: 4, REWARD_TOPIC: 6, **{t: 5 for t in LATENT_TOPICS.values()}}
# The encoder nodes whose cores the replay runs, and the modules of their parameters.
ENCODER_PARAMS = {'vision_encoder': 'sage_encoders.vision_encoder_params',
                  'audio_encoder': 'sage_encoders.audio_encoder_params',
                  'language_encoder': 'sage_encoders.language_encoder_params'}
# Messages are released in stamp order once the bag's log time is this far past them (s).
REORDER_S = 0.5


def _stamp(msg: Any) -> float:
    st = msg.header.stamp
    return float(st.sec) + float(st.nanosec) * 1e-9


def resolved_params(node_params: Mapping[str, Mapping[str, Any]], node: str, module: str
                    ) -> dict[str, Any]:
    """A node's parameters with its defaults filled in and checked (module: its PARAMS)."""
    mod = importlib.import_module(module)
    return resolve(mod.PARAMS, dict(node_params.get(node, {})), getattr(mod, 'validate', None),
                   node=node)


@dataclass(frozen=True)
class StateChange:
    """A metabolic state message from the bag."""

    stamp: float
    state: str


InputItem = Union[LatentRecord, ImuRecord, RewardRecord, StateChange]


class Encoders:
    """The encoder cores, built on first use, turning bag messages into records."""

    def __init__(self, node_params: Mapping[str, Mapping[str, Any]]) -> None:
        self.params = node_params
        self._vision: Any = None
        self._audio: Any = None
        self._language: Any = None
        self._seq: Counter[str] = Counter()
        self._accounts: dict[str, Any] = {}

    def account(self, node: str) -> Any:
        """The ATP account of an encoder node, under its plugin name (as the node shell)."""
        if node not in self._accounts:
            plugin = str(self.params.get(node, {}).get('plugin') or node)
            self._accounts[node] = AtpAccount(plugin)
        return self._accounts[node]

    def _values(self, node: str) -> dict[str, Any]:
        return resolved_params(self.params, node, ENCODER_PARAMS[node])

    def vision(self) -> Any:
        if self._vision is None:
            # lazy: keeps onnxruntime and cv2 out of this module's import
            from sage_encoders.vision_core import VisionEncoderCore
            self._vision = VisionEncoderCore.from_params(self._values('vision_encoder'))
        return self._vision

    def audio(self) -> Any:
        if self._audio is None:
            # lazy: keeps onnxruntime and cv2 out of this module's import
            from sage_encoders.audio_core import AudioEncoderCore
            self._audio = AudioEncoderCore.from_params(self._values('audio_encoder'))
        return self._audio

    def language(self) -> Any:
        if self._language is None:
            # lazy: keeps onnxruntime out of this module's import
            from sage_encoders.language_core import LanguageEncoderCore
            self._language = LanguageEncoderCore.from_params(self._values('language_encoder'))
        return self._language

    def records(self, topic: str, msg: Any, stamp: float) -> list[InputItem]:
        """Records for one bag message (an audio frame may complete 0..n windows)."""
        if topic == CAMERA_TOPIC:
            # lazy: keeps cv2 out of this module's import
            from sage_encoders.preprocess import rgb_from_buffer
            rgb = rgb_from_buffer(bytes(msg.data), int(msg.width), int(msg.height),
                                  int(msg.step), str(msg.encoding))
            account = self.account('vision_encoder')
            rec = self.vision().encode(rgb, stamp, self._next('vision'), account.available())
            account.spend(rec.atp_spent)
            return [rec]
        if topic == AUDIO_TOPIC:
            if str(msg.encoding).upper() != 'S16LE':
                raise ReplayError(f"audio encoding '{msg.encoding}' is not S16LE")
            pcm = np.frombuffer(bytes(msg.data), dtype='<i2').astype(np.int16)
            channels = max(1, int(msg.channels))
            if channels > 1:
                pcm = pcm[:pcm.size // channels * channels].reshape(-1, channels)
                pcm = pcm.mean(axis=1).astype(np.int16)
            account = self.account('audio_encoder')
            recs = list(self.audio().push(pcm, stamp, int(msg.sample_rate),
                                          account.available()))
            for rec in recs:
                account.spend(rec.atp_spent)
            return recs
        if topic == TEXT_TOPIC:
            return [self.language().encode(str(msg.text), stamp, self._next('language'))]
        if topic == IMU_TOPIC:
            a, w = msg.linear_acceleration, msg.angular_velocity
            return [ImuRecord(stamp=stamp, input_seq=0,
                              accel=np.array([a.x, a.y, a.z], dtype=np.float64),
                              gyro=np.array([w.x, w.y, w.z], dtype=np.float64))]
        if topic == REWARD_TOPIC:
            return [RewardRecord(stamp, float(msg.value), str(msg.source))]
        if topic == STATE_TOPIC:
            return [StateChange(stamp, str(msg.state))]
        if topic == BUDGET_TOPIC:
            for node in ('vision_encoder', 'audio_encoder'):
                self.account(node).on_budget(int(msg.tick),
                                             ((a.plugin, a.atp) for a in msg.allocations))
            return []
        return [_latent_from_bag(msg, stamp)]

    def _next(self, modality: str) -> int:
        seq = self._seq[modality]
        self._seq[modality] += 1
        return seq


def _latent_from_bag(msg: Any, stamp: float) -> LatentRecord:
    codes, initial = grids(msg)
    return LatentRecord(
        stamp=stamp, modality=str(msg.modality), input_seq=int(msg.input_seq), codes=codes,
        codebook_size=int(msg.codebook_size),
        embedding=np.asarray(msg.embedding, dtype=np.float32),
        features=dict(zip(list(msg.feature_names), (float(v) for v in msg.features))),
        recon_error=float(msg.recon_error), text=str(msg.text), codes_initial=initial,
        energy_initial=float(msg.energy_initial), iterations=int(msg.iterations),
        model_version=str(getattr(msg, 'model_version', '')))  # bags from before the field


def bag_span(bag_path: Path) -> tuple[float, float]:
    """(first, last) log time of a bag in seconds, from its index (no message is read).

    Raises:
        ReplayError: the bag cannot be opened.
    """
    try:
        reader = AnyReader([Path(bag_path)], default_typestore=typestore())
        reader.open()
    except (AnyReaderError, OSError, ValueError) as err:
        raise ReplayError(f'cannot open bag {bag_path}: {err}') from err
    try:
        if not reader.message_count:
            return 0.0, 0.0
        return reader.start_time * 1e-9, reader.end_time * 1e-9
    finally:
        reader.close()


def iter_inputs(bag_path: Path, node_params: Mapping[str, Mapping[str, Any]], *,
                reorder_s: float = REORDER_S, problems: Counter[str] | None = None
                ) -> Iterator[InputItem]:
    """Read a bag and yield SNARC's inputs in stamp order, encoding raw sensor messages.

    Args:
        bag_path: rosbag2 folder (MCAP or sqlite3).
        node_params: (partial) parameters of 'vision_encoder', 'audio_encoder',
            'language_encoder'.
        reorder_s: messages are released in stamp order once the bag's log time is this far
            past their stamp (recorded bags log a little after the capture stamp).
        problems: counts messages that could not be decoded or encoded, by topic and error.

    Raises:
        ReplayError: the bag cannot be opened or holds no SAGE input topic.
    """
    bag_path = Path(bag_path)
    if not bag_path.exists():
        raise ReplayError(f'bag not found: {bag_path}')
    problems = problems if problems is not None else Counter()
    try:
        reader = AnyReader([bag_path], default_typestore=typestore())
        reader.open()
    except (AnyReaderError, OSError, ValueError) as err:
        raise ReplayError(f'cannot open bag {bag_path}: {err}') from err
    try:
        topics = {c.topic for c in reader.connections}
        wanted = {CAMERA_TOPIC, AUDIO_TOPIC, IMU_TOPIC, TEXT_TOPIC, REWARD_TOPIC, STATE_TOPIC,
                  BUDGET_TOPIC}
        raw_for = {'vision': CAMERA_TOPIC, 'audio': AUDIO_TOPIC, 'language': TEXT_TOPIC}
        for modality, topic in LATENT_TOPICS.items():
            if raw_for[modality] not in topics:
                wanted.add(topic)
        conns = [c for c in reader.connections if c.topic in wanted]
        if not conns:
            raise ReplayError(f'{bag_path}: none of the SAGE input topics is in the bag')
        encoders = Encoders(node_params)
        heap: list[tuple[float, int, int, str, Any]] = []
        counter = 0

        def release(limit: float) -> Iterator[InputItem]:
            while heap and heap[0][0] <= limit:
                stamp, _, _, topic, msg = heapq.heappop(heap)
                try:
                    yield from encoders.records(topic, msg, stamp)
                except SageError as err:
                    problems[f'{topic}:{type(err).__name__}'] += 1

        for conn, logtime, raw in reader.messages(connections=conns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
                stamp = _stamp(msg)
            except (AttributeError, ValueError, KeyError):
                problems[f'{conn.topic}:deserialize'] += 1
                continue
            heapq.heappush(heap, (stamp, TOPIC_RANK.get(conn.topic, 9), counter, conn.topic, msg))
            counter += 1
            yield from release(logtime * 1e-9 - reorder_s)
        yield from release(math.inf)
    finally:
        reader.close()
