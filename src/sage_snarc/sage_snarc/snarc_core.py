"""SNARC core: scores every input on five axes and decides whether to attend (no rclpy).

One `SnarcCore` serves all modalities. Each input goes through:

1. surprise  - per-modality predictor errors as robust z-scores (predictor.py);
2. novelty   - nearest distance to recent inputs and stored memories (novelty.py);
3. arousal   - signal intensity from the encoder's raw features or the IMU window (arousal.py);
4. reward    - association with rewarded inputs (reward.py);
5. conflict  - disagreement between modalities over a stamp window (conflict.py);

then salience = (sum_a w_a x_a^p)^(1/p) * habituation factor, attend = salience >= threshold
(episodes.py, threshold.py). Everything is driven by stamps: no wall clock and no randomness,
so the same inputs in the same order give the same decisions (the offline replay relies on
it). Parameters come parsed once into a `SnarcConfig` (snarc_config.py); what is learnt is the
fields of `SnarcState` (snarc_state.py), which are the checkpoint. README.md defines each axis.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
import math
from typing import Any

import numpy as np

from sage_common.errors import ParamError
from sage_common.health import Level
from sage_common.params import resolve
from sage_common.records import (ImuRecord, LatentRecord, RewardRecord, SalienceRecord,
                                  model_name)
from sage_common.vocabulary import LATENT_MODALITIES
from sage_snarc.arousal import band_arousal, imu_embedding, latent_arousal
from sage_snarc.audio_scene import (ATTACK_PREFIX, ROOM_BAND_COUNT, ROOM_BAND_DROP_DB,
                                    ROOM_DROP_DB, ROOM_RISE_DB, ROOM_RISE_FLUX_DB, bands_of)
from sage_snarc.conflict import AUDIO_OFFSET_S, ConflictWindow
from sage_snarc.episodes import combine, habituation_of, reinforce
from sage_snarc.errors import SnarcError
from sage_snarc.imu import GRAVITY_ALPHA, ImuAggregator, ImuWindow
from sage_snarc.input_checks import clean_embedding, clean_features
from sage_snarc.modality_state import MODEL_CHANNELS, ModalityState, upgrade_v1
from sage_snarc.novelty import EXACT_MAX, MemoryIndex, unit
from sage_snarc.reward import MAX_PROTOTYPES, Pending, RewardLearner, WeightAdapter
from sage_snarc.robust import clip01, saturate
from sage_snarc.snarc_config import SnarcConfig
from sage_snarc.snarc_params import PARAMS, SCORED_MODALITIES, STATE_NAMES, validate
from sage_snarc.snarc_state import SnarcState, stats
from sage_snarc.state_codec import encode, restore, saved_fields
from sage_snarc.threshold import ThresholdController

# 2: the state's fields (state_codec); 1: the hand-kept layout, upgraded when loaded.
STATE_VERSION = 2
OLD_VERSIONS = (1,)


@dataclass(frozen=True)
class Observation:
    """One input as the scoring steps take it.

    Attributes:
        stamp, seq: capture stamp (s) and the input's sequence number.
        vec: unit embedding (None: none usable) for novelty and the stimulus descriptor.
        vectors, scalars, codes: what the surprise channels predict.
        arousal, activity: arousal and the conflict activity (None: none to report).
        grid: the vision code grid for the descriptor; sound, attack: the audio foreground
            spectrum at the newest hop's loudest frame and attack (audio_scene).
        voice, speech: how clearly the input starts an utterance, how likely it is speech (0..1).
        onset: how sharply it starts (audio: the onset arousal; 0 for other modalities).
    """

    stamp: float
    seq: int
    vec: np.ndarray | None
    arousal: float
    activity: float | None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)
    codes: np.ndarray | None = None
    grid: np.ndarray | None = None
    sound: np.ndarray | None = None
    attack: np.ndarray | None = None
    voice: float = 0.0
    onset: float = 0.0
    speech: float = 0.0


class SnarcCore(SnarcState):
    """The SNARC salience scorer (see module docstring and README.md)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        """Build from a complete, validated parameter mapping (use `from_params`)."""
        self.values = dict(values)  # as resolved: what `reconfigured` starts from
        self.cfg = cfg = SnarcConfig.from_values(self.values)
        wc, rc, th = cfg.weights, cfg.reward, cfg.threshold
        super().__init__(
            now=-math.inf,
            weights=WeightAdapter(wc.base(), wc.learning_rate),
            reward=RewardLearner(
                window_s=rc.window_s, learning_rate=rc.learning_rate,
                extinction_rate=rc.extinction_rate, decay_s=rc.decay_s,
                max_prototypes=MAX_PROTOTYPES,  # read here: tests shrink it
                modalities=SCORED_MODALITIES),
            threshold=ThresholdController(
                initial=th.initial, lo=th.min, hi=th.max, target_rate_hz=th.target_rate_hz,
                gain=th.gain, offsets=th.offsets()),
            conflict=ConflictWindow(list(cfg.conflict.pairs), cfg.conflict.window_s,
                                    cfg.conflict.lag_s, cfg.conflict.liveness_s),
            imu=ImuAggregator(cfg.imu.window_s),
            gravity=None, memory={}, model_memories=set(), modalities={})
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
        feats = clean_features(m, rec.features, self._issue)
        vec = clean_embedding(m, rec.embedding, self._issue)
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
        arousal, activity = latent_arousal(m, feats, self.cfg.arousal, ms.background)
        sound, attack, voice, speech = None, None, 0.0, 0.0
        if m == 'audio':
            speech = float(np.clip(np.nan_to_num(feats.get('voice', 0.0)), 0.0, 1.0))
            voice = ms.voice_onset(rec.stamp, feats.get('voice'))
            voice *= ms.voice_news(rec.stamp, feats.get('voice'))
            sound, attack, band = self._hear_room(ms, feats)
            arousal = max(arousal, band)
        vectors = {'embedding': vec} if vec is not None and 'embedding' in use else {}
        return self._score(m, Observation(
            rec.stamp, int(rec.input_seq), vec, arousal, activity, vectors, scalars,
            codes if 'codes' in use else None, codes, sound, attack, voice,
            activity if m == 'audio' and activity is not None else 0.0, speech))

    def _hear_room(self, ms: ModalityState, feats: dict[str, float]
                   ) -> tuple[np.ndarray | None, np.ndarray | None, float]:
        """(foreground spectrum, that of the attack, the band arousal) of an audio window;
        then the room's background learns the window (afresh on a change of room)."""
        bands, attack = bands_of(feats), bands_of(feats, ATTACK_PREFIX)
        sound, shape = ms.background.foreground(bands), ms.background.attack_foreground(attack)
        band = band_arousal(sound)
        level = feats.get('hop_db', feats.get('rms_db'))
        if level is not None:
            if ms.background.quieter(level, ROOM_DROP_DB, bands, ROOM_BAND_DROP_DB,
                                     ROOM_BAND_COUNT) \
                    or ms.background.louder(level, bands, ROOM_RISE_DB, ROOM_RISE_FLUX_DB):
                ms.room_changed()
            ms.background.update(level, bands, attack)
        return sound, shape, band

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
        if self.gravity is None:
            self.gravity = w.accel_mean.copy()
        else:
            self.gravity += GRAVITY_ALPHA * (w.accel_mean - self.gravity)
        embedding, arousal = imu_embedding(w, self.gravity, self.cfg.arousal.imu)
        ms = self._modality('imu')
        return self._score('imu', Observation(
            w.stamp, ms.seq, embedding, arousal, arousal,
            vectors={'accel': w.accel_mean, 'gyro': w.gyro_mean}))

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
        # EXACT_MAX read here: tests shrink it
        return MemoryIndex(dim, exact_max=EXACT_MAX, nprobe=self.cfg.novelty.nprobe)

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
            ms = self.modalities[m] = ModalityState.create(m, self.cfg)
            ms.novelty.memory = self.memory.get(m, {}).get(ms.model_version)
        return ms

    def _score(self, m: str, obs: Observation) -> SalienceRecord:
        ms = self._modality(m)
        stamp, dt, hops = self._advance(m, ms, obs.stamp)
        axes, desc, novelty = self._axes(m, ms, stamp, obs, hops)
        now = self.now
        ep = habituation_of(ms, desc, stamp, now, novelty, obs)
        power = self.cfg.weights.power
        out = combine(axes, self.weights.current(now), power, ep.factor)
        threshold = self.threshold.threshold(m)
        attend = out.salience >= threshold
        self.threshold.update(m, attend, dt)
        # Only the stimulus part makes a stimulus worth habituating to: inputs noticed through
        # conflict or reward alone do not reinforce a trace, though a faint repeat does.
        reinforce(ms, ep, desc, stamp, now, out.stimulus_part ** (1.0 / power) >= threshold)
        if desc is not None and out.raw >= threshold:
            # Noticed inputs (attended, or would be without habituation) are eligible for
            # reward: a habituated stimulus can still become valuable.
            self.reward.attended(Pending(stamp, m, desc, axes))
        ms.seq += 1
        ms.count += 1
        ms.attended += int(attend)
        ms.recent.append((stamp, attend, out.salience, axes))
        return SalienceRecord(
            stamp=stamp, modality=m, input_seq=obs.seq, surprise=float(axes[0]),
            novelty=float(axes[1]), arousal=float(axes[2]), reward=float(axes[3]),
            conflict=float(axes[4]), salience=out.salience, threshold=threshold,
            attend=attend)

    def _advance(self, m: str, ms: ModalityState, stamp: float) -> tuple[float, float, int]:
        """The stamp an input is scored at, the time since the modality's last input and
        the hops of its stream since then (`ModalityState.hops_to`); the clocks move on (a
        bad, late or repeated stamp and a lost audio window are reported)."""
        if not math.isfinite(stamp):
            self._issue(Level.WARN, 'bad_stamp', f'{m}: non-finite stamp, scored at now')
            stamp = self.now if math.isfinite(self.now) else 0.0
        if stamp < ms.last_stamp:
            self._issue(Level.WARN, 'out_of_order',
                        f'{m}: stamp {stamp:.3f} before previous {ms.last_stamp:.3f}')
        elif stamp == ms.last_stamp:
            self._issue(Level.WARN, 'duplicate_stamp', f'{m}: duplicate stamp {stamp:.3f}')
        hops = ms.hops_to(stamp)
        if hops > 1 and m == 'audio':  # windows come on a fixed hop grid (vision may skip)
            self._issue(Level.WARN, 'lost_window',  # (a late one comes as out_of_order)
                        f'{m}: {hops - 1} window(s) before {stamp:.3f} had not arrived')
        dt = stamp - ms.last_stamp if math.isfinite(ms.last_stamp) else 0.0
        ms.last_stamp = max(ms.last_stamp, stamp)
        self.now = max(self.now, stamp)
        self.reward.expire(self.now)
        return stamp, dt, hops

    def _axes(self, m: str, ms: ModalityState, stamp: float, obs: Observation,
              hops: int) -> tuple[np.ndarray, np.ndarray | None, float]:
        """(the five axes, the stimulus descriptor or None, novelty before clipping)."""
        now = self.now
        surprise = ms.surprise.observe(obs.vectors, obs.scalars, obs.codes, hops=hops)
        novelty, reward, desc = 0.0, 0.0, None
        if obs.vec is not None:
            novelty, _ = ms.novelty.observe(obs.vec)
            desc = ms.descriptor(m, obs.vec, obs.grid, obs.sound, obs.attack, obs.onset,
                                 obs.speech)
        if obs.sound is not None:
            # Sounds: novel is a sound class not heard lately (a window's code embedding moves
            # with where the sound falls, so it calls every repeat new); a window where nothing
            # stands out of the room brings nothing new, and its codes' change is no surprise.
            novelty, surprise = ((ms.sounds.observe(desc)[0], surprise) if desc is not None
                                 else (0.0, 0.0))
        novelty = max(novelty, obs.voice)
        if desc is not None:
            reward = saturate(max(self.reward.predict(m, desc, now), 0.0)
                              / self.cfg.reward.ref)
        # Audio windows are stamped at their start; their news is at the end.
        t_conflict = stamp + (AUDIO_OFFSET_S if m == 'audio' else 0.0)
        if obs.activity is not None:
            self.conflict.push(m, t_conflict, obs.activity)
        self.conflict.prune(now)
        conflict = self.conflict.score(m, t_conflict)
        axes = np.array([clip01(surprise), clip01(novelty), clip01(obs.arousal),
                         clip01(reward), clip01(conflict)])
        return axes, desc, novelty

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
        return stats(self, self.issues)

    # ------------------------------------------------------------------ checkpoint

    def state_dict(self, include_memory: bool = True) -> dict[str, Any]:
        """Everything learned, as nested dicts of numbers, strings and numpy arrays: the
        fields of `SnarcState` (state_codec), and the version."""
        out = {name: encode(getattr(self, name)) for name in saved_fields(self)}
        if not include_memory:
            out['memory'], out['model_memories'] = {}, []
        return {'version': STATE_VERSION, **out}

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
        # and the orchestrator changes the offsets on every state change.
        core.load_state_dict(self.state_dict(include_memory=False))
        core.memory, core.model_memories = self.memory, self.model_memories
        for by_version in core.memory.values():
            for index in by_version.values():
                index.nprobe = core.cfg.novelty.nprobe
        for m, ms in core.modalities.items():
            core._attach_memory(m, ms)
        core.issues, core._new_issues = self.issues, self._new_issues
        for m, ms in self.modalities.items():
            core.modalities[m].recent = ms.recent
        # Inputs still eligible for a reward stay so (a checkpoint leaves them out).
        core.reward.pending = self.reward.pending
        return core

    def load_state_dict(self, state: Mapping[str, Any], new_stream: bool = False) -> None:
        """Restore a checkpoint from `state_dict` (or from a version in OLD_VERSIONS).

        Args:
            state: what `state_dict` returned.
            new_stream: the inputs that follow come from a new run (a restart), not the one
                the checkpoint was taken in: the open IMU window is dropped, so no window
                mixes samples of two runs or carries a stamp from before the restart.

        Raises:
            SnarcError: the checkpoint has an unknown version or does not fit these params.
        """
        version = state.get('version', -1)
        if version != STATE_VERSION and version not in OLD_VERSIONS:
            raise SnarcError(f"checkpoint version {version} != {STATE_VERSION}")
        upgrade = upgrade_v1 if version == 1 else dict
        self.memory, self.modalities = {}, {}
        try:
            restore(self, state, makers={
                'memory': lambda m, st: self._load_indexes(st),
                'modalities': lambda m, st: self._load_modality(m, upgrade(st))})
            if new_stream:
                self.imu.discard_open()
        except (KeyError, ValueError, TypeError) as err:
            raise SnarcError(f'checkpoint does not fit: {err}') from err

    def _load_indexes(self, state: dict[str, Any]) -> dict[str, MemoryIndex]:
        # Checkpoints from before versions: one index per modality, model not recorded.
        versions = {'': state} if 'dim' in state else state
        out = {}
        for version, ist in versions.items():
            index = out[str(version)] = self._new_index(int(ist['dim']))
            index.load_state_dict(ist)
        return out

    def _load_modality(self, m: str, state: Mapping[str, Any]) -> ModalityState:
        ms = ModalityState.create(m, self.cfg)
        restore(ms, state)
        self._attach_memory(m, ms)
        return ms
