"""What SNARC keeps per modality: its models, its room, its episode and its stream position.

`ModalityState` is a dataclass: its fields are the checkpoint (state_codec), except those
marked transient (what the configuration fixes, and diagnostics).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
import math
from typing import Any

import numpy as np

from sage_snarc.audio_scene import (ATTACK, BACKGROUND_WINDOW, ROOM_BAND_HOPS, ROOM_DROP_HOPS,
                                    ROOM_RISE_HOPS, AudioBackground, band_shape)
from sage_snarc.background import ROOM_SHARE
from sage_snarc.habituation import (MATCH_DIST, MAX_TRACES, NEAR_MISS, RADIUS_EXEMPLARS,
                                    RADIUS_MAX, RADIUS_MIN, RADIUS_QUANTILE, RADIUS_SPREADS,
                                    Habituation)
from sage_snarc.novelty import MIN_SCALE, REL_MIN_SCALE, NoveltyModel, unit
from sage_snarc.predictor import (AUDIO_HOP_CELLS, CODE_BLOCK, CODE_MARGIN, CODE_STRIDE,
                                  CODES_FLOOR, COLOUR_CHANGE_FLOOR, COMBINE_CHANNELS,
                                  GREY_CHANGE_FLOOR, PREDICTOR_ALPHA, TREND_BETA, Metric,
                                  SurpriseModel)
from sage_snarc.robust import MIN_COUNT
from sage_snarc.snarc_config import SnarcConfig
from sage_snarc.state_codec import transient

METRICS: dict[str, Metric] = {'vision': 'cosine', 'audio': 'cosine', 'language': 'cosine',
                              'imu': 'l2'}
# Language arrives a few times a minute: its statistics start from priors for MiniLM sentence
# embeddings, in chord distance sqrt(2 - 2 cos): unrelated sentences lie about 1.2-1.35 apart,
# paraphrases 0.5-0.8. With z_ref 5 an unrelated sentence scores about 0.6, a paraphrase 0.
SURPRISE_PRIORS = {'language': {'v.embedding': (0.6, 0.14)}}
NOVELTY_PRIORS: dict[str, tuple[float, float]] = {'language': (0.6, 0.14)}
# Sounds (unit foreground spectra, 16 bands) start from this prior of the nearest distance
# between the sounds of a room: an impact repeated lies within about 0.1 of itself, a voice
# and an impact about 0.5 apart, so a sound class never heard scores high from the first.
SOUND_NOVELTY_PRIOR = (0.15, 0.08)
# Surprise channels that are not raw features (the profile chooses per modality).
MODEL_CHANNELS = ('embedding', 'codes', 'recon')
# Code histograms (vision stimulus descriptors) have this many bins; larger codes are ignored.
CODES_HIST_BINS = 1024
# Recent inputs kept for diagnostics (stamp, attended, salience, axes).
RECENT_KEPT = 2048
# Smoothing of the background a stimulus descriptor (innovation, code histogram) departs from.
BASELINE_ALPHA = 0.5
# A sound is a stimulus (habituates, has a novelty of its own) when a band rises this far (dB).
MIN_RISE_DB = 6.0
# Voice onsets (`voice_onset`): a window holds a voice from speech probability VOICE_MIN_PROB
# (calm rooms stay below 0.01, recorded phrases peak at 0.38-1); one after VOICE_GAP_S s without
# a voice starts an utterance, whose windows within VOICE_ONSET_S s share its best probability
# (the detector needs a few chunks to be sure) over VOICE_SURE_PROB (Silero's speech decision).
VOICE_MIN_PROB = 0.3
VOICE_SURE_PROB = 0.5
VOICE_GAP_S = 2.0
VOICE_ONSET_S = 0.8
# Voices are part of the room (talk next door, a TV, a radio) when windows with a voice filled
# ROOM_SHARE of the last VOICE_ROOM_S s before an utterance (`voice_news`): as long as the level
# background, and the share that makes any sound part of the room (`background.ROOM_SHARE`).
VOICE_ROOM_S = 30.0


@dataclass(eq=False)
class ModalityState:
    """Everything SNARC keeps per modality (build with `create`)."""

    surprise: SurpriseModel
    novelty: NoveltyModel
    habituation: Habituation
    # The room (audio): arousal is a rise above its level, sounds stand out of its spectrum.
    background: AudioBackground
    sounds: NoveltyModel
    # What a stimulus descriptor (innovation) is measured against, and the vision codes'.
    baseline: np.ndarray | None = None
    code_baseline: np.ndarray | None = None
    episode_trace: int = -1
    episode_last: float = -math.inf
    episode_h: float = 0.0
    attack_last: float = -math.inf  # stamp of the newest window with a sharp attack (audio)
    voice_last: float = -math.inf  # stamp of the newest window with a voice (audio)
    utterance_start: float = -math.inf  # its utterance's first window with a voice
    utterance_peak: float = 0.0  # and the highest speech probability of the utterance
    # stamps of the windows with a voice in the last VOICE_ROOM_S s (audio; `voice_news`)
    voiced: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # the smallest gap between inputs seen (audio: the new sound each window brings, the
    # encoder's hop; `hops_to`)
    hop_s: float = math.inf
    model_version: str = ''  # the encoder model of its latents (LatentRecord.model_version)
    model_changes: int = 0
    room_changes: int = 0
    last_stamp: float = -math.inf
    seq: int = 0
    count: int = 0
    attended: int = 0
    channels: frozenset[str] = transient(default=frozenset(MODEL_CHANNELS))
    recent: deque[tuple[float, bool, float, np.ndarray]] = transient(
        default_factory=lambda: deque(maxlen=RECENT_KEPT))

    @classmethod
    def create(cls, modality: str, cfg: SnarcConfig) -> 'ModalityState':
        """A fresh state for `modality` under the configuration."""
        metric = METRICS.get(modality, 'cosine')
        st, su, nov, hab = cfg.stats, cfg.surprise, cfg.novelty, cfg.habituation
        chosen = su.channels(modality)
        return cls(
            surprise=SurpriseModel(
                alpha=PREDICTOR_ALPHA, beta=TREND_BETA, z_ref=su.z_ref, window=st.window,
                min_count=MIN_COUNT, priors=SURPRISE_PRIORS.get(modality),
                vector_metric=metric, default_floor=1e-4,
                floors={'codes': CODES_FLOOR, 'f.colour_change': COLOUR_CHANGE_FLOOR,
                        'f.grey_change': GREY_CHANGE_FLOOR},
                code_block=CODE_BLOCK if modality == 'vision' else 0,
                code_shift=AUDIO_HOP_CELLS if modality == 'audio' else 0,
                code_margin=CODE_MARGIN, code_stride=CODE_STRIDE,
                combine=COMBINE_CHANNELS),
            novelty=NoveltyModel(
                window=nov.window, z_ref=nov.z_ref, stats_window=st.window,
                min_count=MIN_COUNT, metric=metric, prior=NOVELTY_PRIORS.get(modality),
                floor=MIN_SCALE, rel_floor=REL_MIN_SCALE),
            habituation=Habituation(
                max_traces=MAX_TRACES, rate=hab.rate, max_drop=hab.max_drop,
                recovery_s=hab.recovery_s, match_dist=MATCH_DIST,
                near_miss=NEAR_MISS, spreads=RADIUS_SPREADS,
                quantile=RADIUS_QUANTILE, min_match_dist=RADIUS_MIN, max_match_dist=RADIUS_MAX,
                exemplars=RADIUS_EXEMPLARS),
            background=AudioBackground(BACKGROUND_WINDOW, drop_hops=ROOM_DROP_HOPS,
                                       band_hops=ROOM_BAND_HOPS, rise_hops=ROOM_RISE_HOPS),
            sounds=NoveltyModel(
                window=nov.window, z_ref=nov.z_ref, stats_window=st.window,
                min_count=MIN_COUNT, metric='cosine', prior=SOUND_NOVELTY_PRIOR,
                floor=MIN_SCALE),
            channels=frozenset(chosen) if chosen is not None else frozenset(MODEL_CHANNELS))

    @staticmethod
    def reading(spectrum: np.ndarray | None) -> np.ndarray | None:
        """The shape of one foreground spectrum of an audio window alone (its attack's, or its
        loudest frame's), when some band of it rises MIN_RISE_DB above the room's (None: no
        such sound)."""
        if spectrum is None or spectrum.size == 0 or spectrum.max() < MIN_RISE_DB:
            return None
        return band_shape(spectrum)

    def descriptor(self, modality: str, vec: np.ndarray, codes: np.ndarray | None,
                   sound: np.ndarray | None = None, attack: np.ndarray | None = None,
                   onset: float = 0.0, speech: float = 0.0) -> np.ndarray | None:
        """Unit stimulus descriptor of an input, for habituation and reward (None: no stimulus).

        - language: the sentence embedding (texts are discrete stimuli);
        - vision with a code grid: which codes appeared, i.e. the positive part of the code
          histogram minus its recent background, square-rooted: the puzzle encoder's mean
          embedding mostly says "darker" or "more texture", the codes say what appeared;
        - audio with the encoder's spectral bands: the shape of the foreground spectrum (how far
          each band rises above the room, minus its mean), when some band of the loudest
          frame's rises by MIN_RISE_DB: over the attack for a sound that has one (`onset` at
          least ATTACK), at the loudest frame for one that has not (the largest rise of a
          steady sound is any flicker), blended in between so the descriptor does not jump;
          and by how unlikely it is speech (`speech`, the voice detector's probability): a
          syllable's attack differs from the next one's, the voice's spectrum does not;
        - audio without bands, IMU: the direction in which the embedding departs from its recent
          background
          (innovation), so a clap matches an earlier clap wherever it falls in a window; a
          departure within the noise (3 spreads of the nearest-distance statistics) is none.
        """
        if modality == 'language':
            return vec.astype(np.float32)
        if sound is not None:
            if sound.max() < MIN_RISE_DB:
                return None
            if attack is not None:
                sharp = min(1.0, max(onset, 0.0) / ATTACK) * (1.0 - speech)
                sound = sound + sharp * (attack - sound)
            return band_shape(sound)
        if modality == 'vision' and codes is not None:
            hist = np.sqrt(np.bincount(codes.ravel(), minlength=CODES_HIST_BINS)
                           [:CODES_HIST_BINS].astype(np.float64))
            base = self.code_baseline
            if base is None:
                self.code_baseline = hist
                return None
            appeared = np.maximum(hist - base, 0.0).astype(np.float32)
            base += BASELINE_ALPHA * (hist - base)
            return unit(appeared)
        base = self.baseline
        if base is None or base.shape != vec.shape:
            self.baseline = vec.astype(np.float64).copy()
            return None
        innovation = (vec - base).astype(np.float32)
        base += BASELINE_ALPHA * (vec - base)
        stats = self.novelty.stats
        if not stats.ready:
            return None
        center, scale = stats.center_scale()
        if float(np.linalg.norm(innovation)) <= center + 3.0 * scale:
            return None
        return unit(innovation)

    def room_changed(self) -> None:
        """A source of the room's own noise stopped or started (`AudioBackground.quieter`: its
        level or some of its bands dropped; `AudioBackground.louder`: its level rose and
        stayed up, steadily): the room's background level and spectrum are learnt afresh, and
        so are the error statistics of every surprise channel.

        Those were learnt in the other room. An encoder embeds a quiet room and a vent's
        steady noise differently (a quiet room moves more from window to window), and a
        vent's level flickers more from hop to hop than a quiet room's (about 1.5 dB against
        0.3-0.7 in the scenes): scored against the old statistics, the new room itself would be a
        surprise until they caught up (half of stats.window, about 30 s), and measured from the
        old level it would stay arousing for half of the background window. Until
        MIN_COUNT new errors are in, the audio channels score no surprise.
        """
        self.room_changes += 1
        self.background.restart()
        self.surprise.forget_errors(tuple(self.channels))

    def follow_model(self, version: str) -> bool:
        """Note the encoder model of an input ('' = unknown: nothing to compare).

        Returns True when the input names another model than the last (or the first one).

        A new model (promoted after sleep, rolled back, retrained in place) encodes the same
        scene into other codes and embeddings: compared with the old model's, every input
        would look surprising and new. What was predicted from the old model's output is
        dropped (the next input sets the code grid, embedding and reconstruction predictions,
        the novelty window and the vision code baseline afresh, unscored on them); the
        statistics of the errors stay, so the inputs that follow are scored as before. The
        signal features (arousal, the room's spectrum, the voice) do not depend on the model.
        """
        if not version or version == self.model_version:
            return False
        known, self.model_version = self.model_version, version
        if known:  # the first model named is no change
            self.model_changes += 1
            self.surprise.restart(MODEL_CHANNELS)
            self.novelty.restart()
            self.baseline = None
            self.code_baseline = None
        return True

    def hops_to(self, stamp: float) -> int:
        """Hops of the stream from the last input to one stamped `stamp` (call before
        `last_stamp` moves on; learns `hop_s`): 1 for the next window, 2 when one was lost on
        the way, 0 for a late or repeated stamp; 1 for the first inputs (no hop known yet).

        Latents travel best effort, and a loaded robot loses one now and then: what the
        window after a lost one brings is two hops of new sound, not one.
        """
        gap = stamp - self.last_stamp
        if not gap > 0.0:
            return 0
        if gap < self.hop_s:
            self.hop_s = gap
        return max(1, round(gap / self.hop_s)) if math.isfinite(gap) else 1

    def voice_news(self, stamp: float, voice: float | None) -> float:
        """Share of the current utterance's onset that is news (0-1): 1 in a room where
        voices are rare, falling to 0 as the windows with a voice before this utterance fill
        ROOM_SHARE of the last VOICE_ROOM_S s. Call after `voice_onset`, once per window.

        Talk next door, a TV or a radio keeps starting phrases, each as sure a voice as a
        person addressing the robot and often as loud: what tells them apart is that they
        keep on. Someone who speaks up in a room where no one has talked for a while is news;
        their own phrase does not count against them (only voices before it do), and a
        conversation's later phrases count its earlier ones, as habituation would.
        """
        keep = self.voiced[self.voiced >= stamp - VOICE_ROOM_S]
        if voice is not None and voice >= VOICE_MIN_PROB:
            keep = np.append(keep, stamp)
        self.voiced = keep
        if not math.isfinite(self.hop_s):
            return 1.0  # one window heard: no room yet
        share = np.count_nonzero(keep < self.utterance_start) * self.hop_s / VOICE_ROOM_S
        return max(0.0, 1.0 - share / ROOM_SHARE)

    def voice_onset(self, stamp: float, voice: float | None) -> float:
        """How clearly a window starts an utterance: within VOICE_ONSET_S of the
        utterance's first voice window, the highest speech probability it reached over
        VOICE_SURE_PROB (at most 1: the detector's confidence that it is a voice,
        not how new the voice is); else 0.

        Someone starting to speak is news however much the voice resembles the last phrase
        or stands out of the room: a phrase 6 dB above a fan moves the foreground spectrum
        no further than noise does. The detector needs a few chunks of a voice to be sure,
        so the onset's first windows share its best score; the rest of it is not new.
        """
        if voice is None or not math.isfinite(voice) or voice < VOICE_MIN_PROB:
            return 0.0
        if not stamp - self.voice_last <= VOICE_GAP_S:
            self.utterance_start, self.utterance_peak = stamp, 0.0
        self.voice_last = stamp
        self.utterance_peak = max(self.utterance_peak, float(voice))
        if stamp - self.utterance_start > VOICE_ONSET_S:
            return 0.0
        return min(1.0, self.utterance_peak / VOICE_SURE_PROB)


def upgrade_v1(state: Mapping[str, Any]) -> dict[str, Any]:
    """A modality's checkpoint of version 1 (the hand-kept layout) in the field layout."""
    st = dict(state)
    st['novelty'] = {'recent': st.pop('recent'), 'stats': st.pop('novelty_stats')}
    st['episode_trace'], st['episode_last'], st['episode_h'] = st.pop('episode')
    if 'voice' in st:  # from before the field: no utterance open
        st['voice_last'], st['utterance_start'], st['utterance_peak'] = st.pop('voice')
    return st
