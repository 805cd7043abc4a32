"""SNARC core: scores every input on five axes and decides whether to attend (no rclpy).

One `SnarcCore` serves all modalities. Each input goes through:

1. surprise  - per-modality predictor errors as robust z-scores (predictor.py);
2. novelty   - nearest distance to recent inputs and stored memories (novelty.py);
3. arousal   - signal intensity from the encoder's raw features or the IMU window;
4. reward    - association with rewarded inputs (reward.py);
5. conflict  - disagreement between modalities over a stamp window (conflict.py);

then salience = (sum_a w_a x_a^p)^(1/p) * habituation factor, attend = salience >= threshold
(threshold.py). Everything is driven by stamps: no wall clock and no randomness, so the same
inputs in the same order give the same decisions (the offline replay relies on it).
Definitions of every axis are in README.md.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
import math
from typing import Any

import numpy as np

from sage_common.errors import ParamError
from sage_common.health import Level
from sage_common.params import resolve
from sage_common.records import (AXES, ImuRecord, LatentRecord, RewardRecord, SalienceRecord,
                                  model_name)
from sage_common.vocabulary import LATENT_MODALITIES
from sage_snarc.audio_scene import AudioBackground, bands_of
from sage_snarc.conflict import ConflictWindow, parse_pairs
from sage_snarc.errors import SnarcError
from sage_snarc.habituation import Habituation
from sage_snarc.imu import ImuAggregator, ImuWindow
from sage_snarc.novelty import MemoryIndex, NoveltyModel, unit
from sage_snarc.predictor import Metric, SurpriseModel
from sage_snarc.reward import Pending, RewardLearner, WeightAdapter
from sage_snarc.robust import clip01, saturate
from sage_snarc.snarc_params import (channel_list, PARAMS, SCORED_MODALITIES, STATE_NAMES,
                                     validate)
from sage_snarc.threshold import ThresholdController

STATE_VERSION = 1
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
# Attention-rate and score-distribution horizon for diagnostics (s of stamp time).
DIAG_HORIZON_S = 60.0


class ModalityState:
    """Everything SNARC keeps per modality."""

    # Declared here for the type checker: the methods above __init__ assign them first.
    baseline: np.ndarray | None
    code_baseline: np.ndarray | None
    model_version: str
    model_changes: int

    def descriptor(self, modality: str, vec: np.ndarray, codes: np.ndarray | None,
                   sound: np.ndarray | None = None) -> np.ndarray | None:
        """Unit stimulus descriptor of an input, for habituation and reward (None: no stimulus).

        - language: the sentence embedding (texts are discrete stimuli);
        - vision with a code grid: which codes appeared, i.e. the positive part of the code
          histogram minus its recent background, square-rooted: the puzzle encoder's mean
          embedding mostly says "darker" or "more texture", the codes say what appeared;
        - audio with the encoder's spectral bands: the shape of the foreground spectrum (how far
          each band rises above the room, minus its mean), when some band rises by
          habituation.audio_min_rise_db;
        - audio without bands, IMU: the direction in which the embedding departs from its recent
          background
          (innovation), so a clap matches an earlier clap wherever it falls in a window; a
          departure within the noise (3 spreads of the nearest-distance statistics) is none.
        """
        if modality == 'language':
            return vec.astype(np.float32)
        if sound is not None:
            # Its shape across bands, not its loudness: impacts rise in every band, and what
            # tells one from another is where they rise most.
            if sound.max() < self.min_rise_db:
                return None
            return unit((sound - sound.mean()).astype(np.float32))
        if modality == 'vision' and codes is not None:
            hist = np.sqrt(np.bincount(codes.ravel(), minlength=CODES_HIST_BINS)
                           [:CODES_HIST_BINS].astype(np.float64))
            base = self.code_baseline
            if base is None:
                self.code_baseline = hist
                return None
            appeared = np.maximum(hist - base, 0.0).astype(np.float32)
            base += self.baseline_alpha * (hist - base)
            return unit(appeared)
        base = self.baseline
        if base is None or base.shape != vec.shape:
            self.baseline = vec.astype(np.float64).copy()
            return None
        innovation = (vec - base).astype(np.float32)
        base += self.baseline_alpha * (vec - base)
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
        stats.min_count new errors are in, the audio channels score no surprise.
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

    def __init__(self, modality: str, v: Mapping[str, Any]) -> None:
        metric = METRICS.get(modality, 'cosine')
        self.metric: Metric = metric
        self.surprise = SurpriseModel(
            alpha=float(v['surprise.alpha']), beta=float(v['surprise.beta']),
            z_ref=float(v['surprise.z_ref']), window=int(v['stats.window']),
            min_count=int(v['stats.min_count']), priors=SURPRISE_PRIORS.get(modality),
            vector_metric=metric, default_floor=1e-4,
            floors={'codes': float(v['surprise.codes.floor']),
                    'f.colour_change': float(v['surprise.colour_change.floor']),
                    'f.grey_change': float(v['surprise.grey_change.floor'])},
            code_block=int(v['surprise.codes.block']) if modality == 'vision' else 0,
            code_shift=int(v['surprise.codes.audio_hop_cells']) if modality == 'audio' else 0,
            code_margin=int(v['surprise.codes.margin']),
            code_stride=int(v['surprise.codes.stride']),
            combine=int(v['surprise.combine_channels']))
        key = f'surprise.channels.{modality}'
        self.channels = frozenset(channel_list(str(v[key]))) if key in v else \
            frozenset(MODEL_CHANNELS)
        self.novelty = NoveltyModel(
            window=int(v['novelty.window']), z_ref=float(v['novelty.z_ref']),
            stats_window=int(v['stats.window']), min_count=int(v['stats.min_count']),
            metric=metric, prior=NOVELTY_PRIORS.get(modality),
            floor=float(v['novelty.min_scale']), rel_floor=float(v['novelty.rel_min_scale']))
        self.habituation = Habituation(
            max_traces=int(v['habituation.max_traces']), rate=float(v['habituation.rate']),
            max_drop=float(v['habituation.max_drop']),
            recovery_s=float(v['habituation.recovery_s']),
            match_dist=float(v['habituation.match_dist']),
            near_miss=float(v['habituation.near_miss']),
            spreads=float(v['habituation.radius.spreads']),
            quantile=float(v['habituation.radius.quantile']),
            min_match_dist=float(v['habituation.radius.min']),
            exemplars=int(v['habituation.radius.exemplars']))
        self.baseline_alpha = float(v['habituation.baseline_alpha'])
        # The room (audio): arousal is a rise above its level, sounds stand out of its spectrum.
        self.background = AudioBackground(int(v['arousal.audio.background_window']),
                                          drop_hops=int(v['arousal.audio.room_drop_hops']),
                                          band_hops=int(v['arousal.audio.room_band_hops']),
                                          rise_hops=int(v['arousal.audio.room_rise_hops']))
        self.room_changes = 0
        self.min_rise_db = float(v['habituation.audio_min_rise_db'])
        self.sounds = NoveltyModel(
            window=int(v['novelty.window']), z_ref=float(v['novelty.z_ref']),
            stats_window=int(v['stats.window']), min_count=int(v['stats.min_count']),
            metric='cosine', prior=SOUND_NOVELTY_PRIOR, floor=float(v['novelty.min_scale']))
        self.baseline = None
        self.code_baseline = None
        self.episode_trace = -1
        self.episode_last = -math.inf
        self.episode_h = 0.0
        self.episode_new = False  # the episode's onset started a trace of its own
        self.voice_last = -math.inf  # stamp of the newest window with a voice (audio)
        self.utterance_start = -math.inf  # its utterance's first window with a voice
        self.utterance_peak = 0.0  # and the highest speech probability of the utterance
        self.model_version = ''  # the encoder model of its latents (LatentRecord.model_version)
        self.model_changes = 0
        self.last_stamp = -math.inf
        self.seq = 0
        self.count = 0
        self.attended = 0
        # (stamp, attended, salience, axes) of recent inputs, for diagnostics.
        self.recent: deque[tuple[float, bool, float, np.ndarray]] = deque(maxlen=2048)


class SnarcCore:
    """The SNARC salience scorer (see module docstring and README.md)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        """Build from a complete, validated parameter mapping (use `from_params`)."""
        self.values = dict(values)
        v = self.values
        self._axes_w0 = np.array([float(v[f'weights.{a}']) for a in AXES])
        self.weights = WeightAdapter(self._axes_w0, float(v['weights.learning_rate']),
                                     float(v['weights.min']), float(v['weights.decay_s']))
        self.power = float(v['combine.power'])
        self._audio_offset = float(v['conflict.audio_offset_s'])
        self.episode_gap_s = float(v['habituation.episode_gap_s'])
        self._reward_ref = float(v['reward.ref'])
        self._novelty_gate = float(v['habituation.novelty_gate'])
        self._voice_min = float(v['novelty.voice.min_prob'])
        self._voice_sure = float(v['novelty.voice.sure_prob'])
        self._voice_gap_s = float(v['novelty.voice.gap_s'])
        self._voice_onset_s = float(v['novelty.voice.onset_s'])
        self.modalities: dict[str, ModalityState] = {}
        self.reward = RewardLearner(
            window_s=float(v['reward.window_s']), tau_s=float(v['reward.tau_s']),
            learning_rate=float(v['reward.learning_rate']),
            extinction_rate=float(v['reward.extinction_rate']),
            kernel_width=float(v['reward.kernel_width']),
            max_prototypes=int(v['reward.max_prototypes']),
            decay_s=float(v['reward.decay_s']), modalities=SCORED_MODALITIES)
        self.conflict = ConflictWindow(parse_pairs(str(v['conflict.pairs'])),
                                       float(v['conflict.window_s']), float(v['conflict.lag_s']),
                                       float(v['liveness_s']))
        self.threshold = ThresholdController(
            initial=float(v['threshold.initial']), lo=float(v['threshold.min']),
            hi=float(v['threshold.max']), target_rate_hz=float(v['threshold.target_rate_hz']),
            gain=float(v['threshold.gain']),
            offsets={s.upper(): float(v[f'threshold.offset.{s}']) for s in STATE_NAMES})
        self.imu = ImuAggregator(float(v['imu.window_s']), float(v['imu.gravity']))
        self._gravity_vec: np.ndarray | None = None
        # Stored memories' embeddings per modality and encoder model version: novelty compares
        # an input only with memories its own model embedded ('' = version not recorded).
        self.memory: dict[str, dict[str, MemoryIndex]] = {}
        # (modality, model version name) whose re-embedded memories are in: a latched
        # /sage/models/live message comes again (a restart of its publisher), they do not.
        self.model_memories: set[tuple[str, str]] = set()
        self.now = -math.inf
        self.issues: Counter[str] = Counter()
        self._new_issues: deque[tuple[Level, str]] = deque(maxlen=64)

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> 'SnarcCore':
        """Build from (possibly partial) parameter values; missing ones take their defaults.

        Raises:
            SnarcError: a value is out of range or the cross-field rules fail.
        """
        try:
            full = resolve(PARAMS, values, validate, node='snarc')
        except ParamError as err:
            raise SnarcError(str(err)) from err
        return cls(full)

    # ------------------------------------------------------------------ inputs

    def score_latent(self, rec: LatentRecord) -> SalienceRecord:
        """Score one encoded input (vision, audio or language latent)."""
        m = rec.modality if rec.modality in LATENT_MODALITIES else rec.modality or 'unknown'
        if m not in LATENT_MODALITIES:
            self._issue(Level.WARN, 'unknown_modality', f"latent with modality '{m}'")
        feats = self._clean_features(m, rec.features)
        vec = self._clean_embedding(m, rec.embedding)
        ms = self._modality(m)
        if ms.follow_model(rec.model_version):
            self._attach_memory(m, ms)
        # Scored before refinement: what refinement changes depends on the ATP SAGE itself
        # gave this input, which is not news about the world.
        grid = rec.scored_codes
        codes = grid if isinstance(grid, np.ndarray) and grid.ndim == 2 else None
        use = ms.channels
        scalars = {k: feats[k] for k in use if k in feats and k not in MODEL_CHANNELS}
        recon = rec.energy_initial if rec.iterations > 0 else rec.recon_error
        if not math.isfinite(recon):
            self._issue(Level.WARN, 'non_finite', f'{m}: non-finite reconstruction error')
        elif recon >= 0.0 and 'recon' in use:
            scalars['recon'] = float(recon)
        arousal, activity = self._arousal(m, feats)
        sound, voice = None, 0.0
        if m == 'audio':
            voice = self._voice_onset(ms, rec.stamp, feats.get('voice'))
            bands = bands_of(feats)
            sound = ms.background.foreground(bands)
            arousal = max(arousal, self._band_arousal(sound))
            level = feats.get('hop_db', feats.get('rms_db'))
            if level is not None:
                v = self.values
                if ms.background.quieter(level, float(v['arousal.audio.room_drop_db']), bands,
                                         float(v['arousal.audio.room_band_drop_db']),
                                         int(v['arousal.audio.room_band_count'])) \
                        or ms.background.louder(level, bands,
                                                float(v['arousal.audio.room_rise_db']),
                                                float(v['arousal.audio.room_rise_flux_db'])):
                    ms.room_changed()
                ms.background.update(level, bands)
        vectors = {'embedding': vec} if vec is not None and 'embedding' in use else {}
        return self._score(m, rec.stamp, int(rec.input_seq), vec, vectors, scalars,
                           codes if 'codes' in use else None, arousal, activity, codes, sound,
                           voice)

    def _band_arousal(self, sound: np.ndarray | None) -> float:
        """Arousal of the most risen band: a sound loud only where the room is quiet (a punch
        over a fan) barely moves the level, but stands far out of those bands."""
        ref = float(self.values['arousal.audio.band_ref_db'])
        if sound is None or ref <= 0.0 or sound.size == 0:
            return 0.0
        rise = float(sound.max()) - float(self.values['arousal.audio.band_floor_db'])
        return saturate(max(0.0, rise) / ref)

    def _voice_onset(self, ms: 'ModalityState', stamp: float, voice: float | None) -> float:
        """How clearly a window starts an utterance: within novelty.voice.onset_s of the
        utterance's first voice window, the highest speech probability it reached over
        novelty.voice.sure_prob (at most 1: the detector's confidence that it is a voice,
        not how new the voice is); else 0.

        Someone starting to speak is news however much the voice resembles the last phrase
        or stands out of the room: a phrase 6 dB above a fan moves the foreground spectrum
        no further than noise does. The detector needs a few chunks of a voice to be sure,
        so the onset's first windows share its best score; the rest of it is not new.
        """
        if voice is None or not math.isfinite(voice) or voice < self._voice_min:
            return 0.0
        if not stamp - ms.voice_last <= self._voice_gap_s:
            ms.utterance_start, ms.utterance_peak = stamp, 0.0
        ms.voice_last = stamp
        ms.utterance_peak = max(ms.utterance_peak, float(voice))
        if stamp - ms.utterance_start > self._voice_onset_s:
            return 0.0
        return min(1.0, ms.utterance_peak / self._voice_sure)

    def score_imu(self, rec: ImuRecord) -> SalienceRecord | None:
        """Add one IMU sample; returns the score of a window when this sample closed one."""
        window, problem = self.imu.push(rec)
        if problem:
            self._issue(Level.WARN, problem, f'imu: {problem.replace("_", "-")} sample dropped')
            return None
        if window is None:
            return None
        return self._score_imu_window(window)

    def _score_imu_window(self, w: ImuWindow) -> SalienceRecord:
        v = self.values
        alpha = float(v['imu.gravity_alpha'])
        if self._gravity_vec is None:
            self._gravity_vec = w.accel_mean.copy()
        else:
            self._gravity_vec += alpha * (w.accel_mean - self._gravity_vec)
        accel_ref, gyro_ref = float(v['arousal.imu.accel_ref']), float(v['arousal.imu.gyro_ref'])
        embedding = np.concatenate([(w.accel_mean - self._gravity_vec) / accel_ref,
                                    w.gyro_mean / gyro_ref]).astype(np.float32)
        arousal = max(saturate(w.dyn_max / accel_ref), saturate(w.gyro_max / gyro_ref))
        ms = self._modality('imu')
        vectors = {'accel': w.accel_mean, 'gyro': w.gyro_mean}
        return self._score('imu', w.stamp, ms.seq, embedding, vectors, {}, None, arousal,
                           arousal)

    def add_reward(self, rec: RewardRecord) -> None:
        """Credit a reward to recently attended inputs and adapt the weights."""
        value = float(rec.value)
        if not (math.isfinite(value) and math.isfinite(rec.stamp)):
            self._issue(Level.WARN, 'non_finite', 'reward: non-finite value or stamp ignored')
            return
        if not -1.0 <= value <= 1.0:
            self._issue(Level.WARN, 'reward_range', f'reward {value:.3g} clipped to [-1, 1]')
            value = min(max(value, -1.0), 1.0)
        self.now = max(self.now, rec.stamp)
        self.reward.expire(self.now)
        for item, e in self.reward.reward(rec.stamp, value):
            self.weights.learn(item.axes, value, e, self.now)
            self._modality(item.modality).habituation.relieve(item.vec, abs(value) * e,
                                                             self.now)

    def add_memory(self, modality: str, embedding: np.ndarray, model_version: str = '') -> bool:
        """Add a stored memory's embedding to the novelty index; False if it was rejected.

        model_version: the encoder model that embedded it ('' = not recorded: taken as the
        modality's current model, as before versions were recorded).
        """
        if modality not in LATENT_MODALITIES:
            return False
        raw = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if not np.isfinite(raw).all():
            self._issue(Level.WARN, 'bad_memory', f'{modality}: non-finite memory embedding')
            return False
        x = unit(raw)
        if x is None:
            self._issue(Level.WARN, 'bad_memory', f'{modality}: empty or zero memory embedding')
            return False
        ms = self._modality(modality)
        version = model_version or ms.model_version
        by_version = self.memory.setdefault(modality, {})
        index = by_version.get(version)
        if index is None:
            index = by_version[version] = self._new_index(x.shape[0])
        if index.dim != x.shape[0]:
            self._issue(Level.WARN, 'bad_memory',
                        f'{modality}: memory embedding has {x.shape[0]} dims, index {index.dim}')
            return False
        index.add(x)
        self._attach_memory(modality, ms)
        return True

    def add_model_memories(self, modality: str, version: str, embeddings: np.ndarray) -> int:
        """Add the stored memories a sleep re-embedded with a new model version.

        When sleep promotes a model it embeds the stored inputs with it (the version's
        memory_embeddings file), so novelty under that model compares with the past, not
        with an empty index. Each row goes through `add_memory` into that version's index,
        beside the memories stored while it was live; once per (modality, version), however
        often it is called.

        Args:
            modality: 'vision' or 'audio'.
            version: the version name ('v0002'), as /sage/models/live names it. Latents name
                '<name>:<digest>': the rows go to the current model's index when its name
                is this, else wait under the bare name until a model of that name is current.
            embeddings: (N, D) embeddings, one row per memory.

        Returns:
            How many rows were added (0 when this version's were added before).
        """
        key = (modality, version)
        if modality not in LATENT_MODALITIES or not version or key in self.model_memories:
            return 0
        x = np.asarray(embeddings)
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
            self._issue(Level.WARN, 'bad_model_memories',
                        f'{modality} {version}: re-embedded memories are not an (N, D) array '
                        f'of numbers ({x.dtype} {x.shape})')
            return 0
        self.model_memories.add(key)
        current = self._modality(modality).model_version
        target = current if current and model_name(current) == version else version
        return sum(self.add_memory(modality, row, target) for row in x)

    def report_issue(self, level: Level, key: str, message: str) -> None:
        """A problem the shell found in what it hands the core (a file, a message): counted
        and reported on /diagnostics like the core's own (`drain_issues`)."""
        self._issue(level, key, message)

    def _new_index(self, dim: int) -> MemoryIndex:
        v = self.values
        return MemoryIndex(dim, exact_max=int(v['novelty.exact_max']),
                           nprobe=int(v['novelty.nprobe']), seed=int(v['novelty.seed']))

    def _attach_memory(self, m: str, ms: ModalityState) -> None:
        """Point the modality's novelty at the memories of its current encoder model.

        Memories whose model was not recorded (rows stored before versions were, or added
        while no input had named the model yet) are the first named model's; so are those
        filed under the bare version name (`add_model_memories`) for the first model of that
        name. After a model change the other versions' memories stay, unused: a rollback
        finds its own again.
        """
        by_version = self.memory.get(m, {})
        current = ms.model_version
        for pending in ('', model_name(current)):
            if not current or pending == current or pending not in by_version:
                continue
            waiting = by_version.pop(pending)
            mine = by_version.setdefault(current, waiting)
            if mine is not waiting and mine.dim == waiting.dim:
                for x in waiting.vectors():
                    mine.add(x)
        ms.novelty.memory = by_version.get(current)

    def set_metabolic_state(self, state: str) -> None:
        """Switch the threshold offset to a metabolic state (WAKE, FOCUS, REST, DREAM, CRISIS)."""
        name = str(state).upper()
        if name.lower() not in STATE_NAMES:
            self._issue(Level.WARN, 'unknown_state', f"unknown metabolic state '{state}'")
            return
        self.threshold.state = name

    # ------------------------------------------------------------------ scoring

    def _modality(self, m: str) -> ModalityState:
        ms = self.modalities.get(m)
        if ms is None:
            ms = self.modalities[m] = ModalityState(m, self.values)
            ms.novelty.memory = self.memory.get(m, {}).get(ms.model_version)
        return ms

    def _score(self, m: str, stamp: float, seq: int, vec: np.ndarray | None,
               vectors: dict[str, np.ndarray], scalars: dict[str, float],
               codes: np.ndarray | None, arousal: float, activity: float | None,
               grid: np.ndarray | None = None, sound: np.ndarray | None = None,
               voice: float = 0.0) -> SalienceRecord:
        ms = self._modality(m)
        if not math.isfinite(stamp):
            self._issue(Level.WARN, 'bad_stamp', f'{m}: non-finite stamp, scored at now')
            stamp = self.now if math.isfinite(self.now) else 0.0
        if stamp < ms.last_stamp:
            self._issue(Level.WARN, 'out_of_order',
                        f'{m}: stamp {stamp:.3f} before previous {ms.last_stamp:.3f}')
        elif stamp == ms.last_stamp:
            self._issue(Level.WARN, 'duplicate_stamp', f'{m}: duplicate stamp {stamp:.3f}')
        dt = stamp - ms.last_stamp if math.isfinite(ms.last_stamp) else 0.0
        ms.last_stamp = max(ms.last_stamp, stamp)
        self.now = max(self.now, stamp)
        now = self.now
        self.reward.expire(now)

        surprise = ms.surprise.observe(vectors, scalars, codes)
        novelty, reward, desc = 0.0, 0.0, None
        if vec is not None:
            novelty, _ = ms.novelty.observe(vec)
            desc = ms.descriptor(m, vec, grid, sound)
        if sound is not None:
            # Sounds: novel is a sound class not heard lately (the code embedding of a window
            # moves with where in the window a sound falls, so it calls every repeat new);
            # a window where nothing stands out of the room brings nothing new.
            novelty = ms.sounds.observe(desc)[0] if desc is not None else 0.0
        novelty = max(novelty, voice)
        if desc is not None:
            reward = saturate(max(self.reward.predict(m, desc, now), 0.0) / self._reward_ref)
        # Audio windows are stamped at their start; their news is at the end.
        t_conflict = stamp + (self._audio_offset if m == 'audio' else 0.0)
        if activity is not None:
            self.conflict.push(m, t_conflict, activity)
        self.conflict.prune(now)
        conflict = self.conflict.score(m, t_conflict)

        axes = np.array([clip01(surprise), clip01(novelty), clip01(arousal), clip01(reward),
                         clip01(conflict)])
        w = self.weights.current(now)
        trace, factor = -1, 1.0
        continuing = ms.episode_trace >= 0 and ms.episode_last <= stamp <= ms.episode_last \
            + self.episode_gap_s
        hab = ms.habituation
        if continuing:
            # Later inputs of an episode share its trace; one that recognises a stronger
            # trace moves the episode there (an onset caught at an odd phase).
            trace = ms.episode_trace
            factor = hab.factor(trace, now)
            if desc is not None:
                other, other_factor = hab.match(desc, now)
                if ms.episode_new and 0 <= other != trace:
                    # An onset that matched nothing, continued by a known stimulus: the same
                    # stimulus caught another way (an impact's attack at the end of a hop).
                    hab.share(trace, other, now)
                    ms.episode_new = False
                    factor = hab.factor(trace, now)
                if other >= 0 and other_factor < factor:
                    trace, factor = other, other_factor
                    ms.episode_trace = other
            # Within an episode the stimulus fades too, without counting as a repeat.
            factor = min(factor, 1.0 - hab.max_drop * ms.episode_h)
        elif desc is not None:
            trace, factor = hab.match(desc, now)
        # Habituation needs familiarity: an input never seen before (novelty 1) cannot be a
        # repeat, however its onset resembles one.
        factor = 1.0 - (1.0 - factor) * (1.0 - self._novelty_gate * novelty ** 2)
        # Nor is a new utterance a repeat: the voice may be the last one, its message is not.
        factor = 1.0 - (1.0 - factor) * (1.0 - voice)
        # Habituation fades what the stimulus is (surprise, novelty, arousal), not what it is
        # worth (reward) nor whether the senses agree about it (conflict).
        powered = axes ** self.power
        weighted = w * powered
        stimulus_part = float(weighted[:3].sum())
        raw = clip01(float(weighted.sum()) ** (1.0 / self.power))
        habituated = stimulus_part * factor ** self.power + float(weighted[3:].sum())
        salience = clip01(habituated ** (1.0 / self.power))
        threshold = self.threshold.threshold(m)
        attend = salience >= threshold

        self.threshold.update(m, attend, dt)
        # Only the stimulus part makes a stimulus worth habituating to: inputs noticed through
        # conflict or reward alone do not reinforce a trace.
        if stimulus_part ** (1.0 / self.power) >= threshold:
            if continuing:
                ms.episode_h += hab.rate * (1.0 - ms.episode_h)
                ms.episode_last = stamp
            elif desc is not None:
                # One repeat per episode: its onset reinforces (or starts) a trace.
                ms.episode_new = trace < 0
                ms.episode_trace = hab.reinforce(desc, trace, now)
                ms.episode_h = hab.rate
                ms.episode_last = stamp
        if desc is not None and raw >= threshold:
            # Noticed inputs (attended, or would be without habituation) are eligible for
            # reward: a habituated stimulus can still become valuable.
            self.reward.attended(Pending(stamp, m, desc, axes))
        ms.seq += 1
        ms.count += 1
        ms.attended += int(attend)
        ms.recent.append((stamp, attend, salience, axes))
        return SalienceRecord(
            stamp=stamp, modality=m, input_seq=seq, surprise=float(axes[0]),
            novelty=float(axes[1]), arousal=float(axes[2]), reward=float(axes[3]),
            conflict=float(axes[4]), salience=salience, threshold=threshold, attend=attend)

    def _clean_embedding(self, m: str, emb: Any) -> np.ndarray | None:
        try:
            x = np.asarray(emb, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            self._issue(Level.WARN, 'malformed', f'{m}: embedding is not numeric')
            return None
        if x.size and not np.isfinite(x).all():
            self._issue(Level.WARN, 'non_finite', f'{m}: non-finite embedding values zeroed')
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        out = unit(x)
        if out is None:
            self._issue(Level.WARN, 'empty_embedding', f'{m}: empty or zero embedding')
        return out

    def _clean_features(self, m: str, feats: Mapping[str, Any]) -> dict[str, float]:
        out = {}
        for k, val in feats.items():
            try:
                f = float(val)
            except (TypeError, ValueError):
                f = math.nan
            if math.isfinite(f):
                out[str(k)] = f
            else:
                self._issue(Level.WARN, 'non_finite', f'{m}: feature {k} is not finite')
        return out

    def _arousal(self, m: str, f: dict[str, float]) -> tuple[float, float | None]:
        """(arousal, conflict activity or None) from raw features."""
        v = self.values
        if m == 'vision':
            a = max(saturate(f.get('motion', 0.0) / float(v['arousal.vision.motion_ref'])),
                    saturate(abs(f.get('brightness_change', 0.0))
                             / float(v['arousal.vision.brightness_change_ref'])))
            return a, a
        if m == 'audio':
            # The newest hop is the only new audio in a window; encoders older than the hop
            # features give the window's level instead.
            level = f.get('hop_db', f.get('rms_db'))
            peak = f.get('hop_peak_db', level)
            if level is None or peak is None:
                return 0.0, None
            base = self._modality(m).background.base(level, float(v['arousal.audio.floor_db']))
            loud = saturate(max(0.0, peak - base) / float(v['arousal.audio.range_db']))
            onset = saturate(f.get('hop_onset_db', 0.0) / float(v['arousal.audio.onset_ref_db']))
            return max(loud, onset), onset
        if m == 'language':
            return max(float(v['arousal.language.base']),
                       saturate(f.get('length', 0.0) / float(v['arousal.language.length_ref']))
                       ), None
        return 0.0, None

    # ------------------------------------------------------------------ reporting

    def _issue(self, level: Level, key: str, message: str) -> None:
        self.issues[key] += 1
        # Report the first occurrence and then every 100th, so a bad stream cannot flood.
        if self.issues[key] == 1 or self.issues[key] % 100 == 0:
            self._new_issues.append((level, f'{message} (x{self.issues[key]})'))

    def drain_issues(self) -> list[tuple[Level, str]]:
        """Problems found since the last call (for /diagnostics)."""
        out = list(self._new_issues)
        self._new_issues.clear()
        return out

    def stats(self) -> dict[str, str]:
        """Diagnostic values: per-modality counts, attention rate, salience percentiles."""
        out: dict[str, str] = {}
        now = self.now
        for m, ms in sorted(self.modalities.items()):
            recent = [r for r in ms.recent if r[0] >= now - DIAG_HORIZON_S]
            span = min(DIAG_HORIZON_S, max(1e-9, now - recent[0][0])) if recent else 0.0
            out[f'{m}.inputs'] = str(ms.count)
            out[f'{m}.attended'] = str(ms.attended)
            out[f'{m}.alive'] = str(self.conflict.alive(m, now)).lower()
            out[f'{m}.threshold'] = f'{self.threshold.threshold(m):.3f}'
            if ms.model_version:
                out[f'{m}.model_version'] = ms.model_version
                out[f'{m}.model_changes'] = str(ms.model_changes)
            if ms.room_changes:
                out[f'{m}.room_changes'] = str(ms.room_changes)
            if recent and span > 0.0:
                sal = np.array([r[2] for r in recent])
                axes = np.array([r[3] for r in recent])
                out[f'{m}.attention_rate_hz'] = f'{sum(r[1] for r in recent) / span:.3f}'
                out[f'{m}.salience_p50'] = f'{np.percentile(sal, 50):.3f}'
                out[f'{m}.salience_p95'] = f'{np.percentile(sal, 95):.3f}'
                for i, a in enumerate(AXES):
                    out[f'{m}.{a}_p95'] = f'{np.percentile(axes[:, i], 95):.3f}'
        w = self.weights.w
        for i, a in enumerate(AXES):
            out[f'weight.{a}'] = f'{w[i]:.3f}'
        for m, by_version in sorted(self.memory.items()):
            current = self.modalities[m].model_version if m in self.modalities else ''
            mine = by_version.get(current)
            out[f'{m}.memories'] = str(len(mine) if mine is not None else 0)
            others = sum(len(i) for v, i in by_version.items() if v != current)
            if others:  # embedded by another model version: not compared with
                out[f'{m}.memories_other_models'] = str(others)
        out['metabolic_state'] = self.threshold.state
        for key, n in sorted(self.issues.items()):
            out[f'issue.{key}'] = str(n)
        return out

    # ------------------------------------------------------------------ checkpoint

    def state_dict(self, include_memory: bool = True) -> dict[str, Any]:
        """Everything learned, as nested dicts of numbers, strings and numpy arrays."""
        mods = {}
        for m, ms in self.modalities.items():
            mods[m] = {'surprise': ms.surprise.state_dict(),
                       'recent': ms.novelty.recent.state_dict(),
                       'novelty_stats': ms.novelty.stats.state_dict(),
                       'habituation': ms.habituation.state_dict(),
                       'baseline': None if ms.baseline is None else ms.baseline.copy(),
                       'code_baseline': (None if ms.code_baseline is None
                                         else ms.code_baseline.copy()),
                       'background': ms.background.state_dict(),
                       'sounds': {'recent': ms.sounds.recent.state_dict(),
                                  'stats': ms.sounds.stats.state_dict()},
                       'episode': [ms.episode_trace, ms.episode_last, ms.episode_h],
                       'episode_new': ms.episode_new,
                       'voice': [ms.voice_last, ms.utterance_start, ms.utterance_peak],
                       'model_version': ms.model_version, 'model_changes': ms.model_changes,
                       'room_changes': ms.room_changes,
                       'last_stamp': ms.last_stamp, 'seq': ms.seq,
                       'count': ms.count, 'attended': ms.attended}
        return {
            'version': STATE_VERSION, 'now': self.now, 'modalities': mods,
            'reward': self.reward.state_dict(), 'weights': self.weights.state_dict(),
            'threshold': self.threshold.state_dict(), 'conflict': self.conflict.state_dict(),
            'imu': self.imu.state_dict(),
            'gravity': None if self._gravity_vec is None else self._gravity_vec.copy(),
            'memory': ({m: {v: i.state_dict() for v, i in by_version.items()}
                        for m, by_version in self.memory.items()} if include_memory else {}),
            'model_memories': ([list(k) for k in sorted(self.model_memories)]
                               if include_memory else []),
        }

    def reconfigured(self, values: Mapping[str, Any]) -> 'SnarcCore':
        """This scorer with other parameter values (a change at run time, such as the
        orchestrator's threshold offsets): what it learned, each stream's running state (an
        open utterance, episode or IMU window) and its diagnostics carry over, so a change
        that does not touch scoring leaves every later score as it was.

        Raises:
            SnarcError: a value is out of range or the cross-field rules fail.
        """
        core = SnarcCore.from_params(values)
        # The memory indexes move over, not through a checkpoint: a checkpoint copies every
        # vector and retrains the IVF quantiser, over a second with 60 000 language memories,
        # and the orchestrator changes the offsets on every state change. Only a quantiser
        # built with another exact_max or seed (read-only parameters) is rebuilt.
        move = all(core.values[k] == self.values[k] for k in ('novelty.exact_max',
                                                                'novelty.seed'))
        core.load_state_dict(self.state_dict(include_memory=not move))
        if move:
            core.memory, core.model_memories = self.memory, self.model_memories
            for by_version in core.memory.values():
                for index in by_version.values():
                    index.nprobe = int(core.values['novelty.nprobe'])
            for m, ms in core.modalities.items():
                core._attach_memory(m, ms)
        core.issues, core._new_issues = self.issues, self._new_issues
        for m, ms in self.modalities.items():
            core.modalities[m].recent = ms.recent
        return core

    def load_state_dict(self, state: Mapping[str, Any], new_stream: bool = False) -> None:
        """Restore a checkpoint from `state_dict`.

        Args:
            state: what `state_dict` returned.
            new_stream: the inputs that follow come from a new run (a restart), not the one
                the checkpoint was taken in: the open IMU window is dropped, so no window
                mixes samples of two runs or carries a stamp from before the restart.

        Raises:
            SnarcError: the checkpoint has another version or does not fit these params.
        """
        if int(state.get('version', -1)) != STATE_VERSION:
            raise SnarcError(f"checkpoint version {state.get('version')} != {STATE_VERSION}")
        try:
            self.now = float(state['now'])
            self.memory = {}
            for m, st in state['memory'].items():
                # Checkpoints from before versions: one index per modality, model not recorded.
                versions = {'': st} if 'dim' in st else st
                for version, ist in versions.items():
                    index = self._new_index(int(ist['dim']))
                    index.load_state_dict(ist)
                    self.memory.setdefault(m, {})[str(version)] = index
            # Checkpoints from before re-embedded memories: none added yet.
            self.model_memories = {(str(m), str(v))
                                   for m, v in state.get('model_memories', [])}
            self.modalities = {}
            for m, st in state['modalities'].items():
                ms = self._modality(m)
                ms.surprise.load_state_dict(st['surprise'])
                ms.novelty.recent.load_state_dict(st['recent'])
                ms.novelty.stats.load_state_dict(st['novelty_stats'])
                ms.habituation.load_state_dict(st['habituation'])
                base = st['baseline']
                ms.baseline = None if base is None else np.asarray(base, np.float64).copy()
                ms.episode_trace = int(st['episode'][0])
                ms.episode_last, ms.episode_h = float(st['episode'][1]), float(st['episode'][2])
                # Checkpoints from before these fields: no utterance or episode onset open.
                ms.episode_new = bool(st.get('episode_new', False))
                ms.voice_last, ms.utterance_start, ms.utterance_peak = (
                    float(x) for x in st.get('voice', (-math.inf, -math.inf, 0.0)))
                ms.model_changes = int(st.get('model_changes', 0))
                ms.room_changes = int(st.get('room_changes', 0))
                if 'background' in st:  # checkpoints from before the tracked background
                    ms.background.load_state_dict(st['background'])
                    ms.sounds.recent.load_state_dict(st['sounds']['recent'])
                    ms.sounds.stats.load_state_dict(st['sounds']['stats'])
                cb = st['code_baseline']
                ms.code_baseline = None if cb is None else np.asarray(cb, np.float64).copy()
                # From before the field: '' (the first latent names the model; no restart).
                ms.model_version = str(st.get('model_version', ''))
                self._attach_memory(m, ms)
                ms.last_stamp = float(st['last_stamp'])
                ms.seq, ms.count = int(st['seq']), int(st['count'])
                ms.attended = int(st['attended'])
            self.reward.load_state_dict(state['reward'])
            self.weights.load_state_dict(state['weights'])
            self.threshold.load_state_dict(state['threshold'])
            self.conflict.load_state_dict(state['conflict'])
            self.imu.load_state_dict(state['imu'])
            if new_stream:
                self.imu.discard_open()
            g = state['gravity']
            self._gravity_vec = None if g is None else np.asarray(g, dtype=np.float64).copy()
        except (KeyError, ValueError, TypeError) as err:
            raise SnarcError(f'checkpoint does not fit: {err}') from err
