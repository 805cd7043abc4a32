"""What to store: pair Salience with Latent, apply the storage policy, keep context.

`MemoryCore` is pure (no rclpy, no database): the node feeds it records and stores the
`ExperienceRecord`s it returns. Salience and Latent of one input are paired by
(modality, input_seq) in a small bounded buffer, in either arrival order; IMU inputs have no
Latent and are decided on their scores alone; a Salience whose Latent does not arrive within
`pair_timeout_s` is decided without it.

Policy: an input is stored when the mode says so ('attend': SNARC attended; 'salience':
salience >= min_salience; 'all'; 'off'), its modality is enabled, and the metabolic state is one
in which storing is allowed. The `context_before` inputs preceding a stored one and the
`context_after` following it are stored too, as 'context' rows pointing at it. The most
salient stored inputs (top `full_fidelity_top_fraction` of the recent ones per modality) are
kept verbatim ('full': codes, embedding, preview, encoder report); the rest as 'summary' rows
(embedding, preview and text, no code grid).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
import functools
from typing import Any

import numpy as np

from sage_common.records import MODALITIES, LatentRecord, SalienceRecord
from sage_memory.store.models import ExperienceRecord
from sage_memory.store.memory_store import new_uuid
from sage_common.vocabulary import LATENT_MODALITIES, STATE_NAMES

MODES = ('attend', 'salience', 'all', 'off')
METABOLIC_STATES = STATE_NAMES


# Significant digits that give back any float32.
_F32_DIGITS = 9


def _rounded(value: float, digits: int) -> float:
    """The value to `digits` significant digits, or at float32 precision in its fewest digits.

    Encoder features are float32 from noisy sensors: written as float64 they took 17 digits of
    JSON for 7-8 of information (an audio row's extra took 975 bytes, 500 of them noise).
    """
    if digits >= _F32_DIGITS:
        return float(str(np.float32(value)))
    return float(f'{value:.{digits}g}')


@dataclass(frozen=True)
class PolicyConfig:
    """Storage policy and buffers.

    Attributes:
        device_id: written on every row.
        session: written on every row.
        mode: 'attend', 'salience', 'all' or 'off'.
        min_salience: extra floor on salience for every mode but 'all'.
        modalities: modalities that may be stored.
        states: metabolic states in which storing is allowed ('' state = unknown: allowed).
        context_before: inputs kept before each stored one (per modality).
        context_after: inputs kept after each stored one (per modality).
        full_fidelity_top_fraction: share of stored inputs kept verbatim (0 = none, 1 = all).
        fidelity_window: recent stored saliences per modality the top fraction is taken over.
        summary_keep_preview: keep the preview in summary rows.
        feature_digits: significant digits kept of encoder features and the refinement report
            (9: float32 precision).
        pair_buffer: most unpaired Salience or Latent records kept per modality.
        pair_timeout_s: how long a Salience waits for its Latent.
        tags: tags written on every row.
    """

    device_id: str
    session: str
    mode: str = 'attend'
    min_salience: float = 0.0
    modalities: frozenset[str] = frozenset(MODALITIES)
    states: frozenset[str] = frozenset(METABOLIC_STATES)
    context_before: int = 2
    context_after: int = 2
    full_fidelity_top_fraction: float = 0.2
    fidelity_window: int = 200
    summary_keep_preview: bool = True
    feature_digits: int = 4
    pair_buffer: int = 64
    pair_timeout_s: float = 1.0
    tags: tuple[str, ...] = ()


@dataclass
class _Pending:
    salience: SalienceRecord
    arrived: float


@dataclass
class _ModalityState:
    latents: OrderedDict[int, LatentRecord] = field(default_factory=OrderedDict)
    saliences: OrderedDict[int, _Pending] = field(default_factory=OrderedDict)
    context: deque[tuple[SalienceRecord, LatentRecord | None]] = field(default_factory=deque)
    after_left: int = 0
    after_of: str = ''
    recent: deque[float] = field(default_factory=deque)


class MemoryCore:
    """Turns scored inputs into records to store.

    Args:
        cfg: policy settings.
        clock: monotonic clock for pairing timeouts and wall clock for created_at are the
            same callable here; tests pass a fake.
        uuid_factory: makes row keys (tests pass a deterministic one).
    """

    def __init__(self, cfg: PolicyConfig, clock: Callable[[], float],
                 uuid_factory: Callable[[], str] = new_uuid) -> None:
        self.cfg = cfg
        self._clock = clock
        self._uuid = uuid_factory
        self._mods: dict[str, _ModalityState] = {}
        self.metabolic_state = ''
        self.pose: tuple[float, ...] | None = None
        self.counters: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _mod(self, modality: str) -> _ModalityState:
        st = self._mods.get(modality)
        if st is None:
            st = _ModalityState(context=deque(maxlen=max(1, self.cfg.context_before)),
                                recent=deque(maxlen=max(1, self.cfg.fidelity_window)))
            self._mods[modality] = st
        return st

    def configure(self, cfg: PolicyConfig) -> None:
        """Apply new settings (buffers keep their contents, resized where needed)."""
        self.cfg = cfg
        for st in self._mods.values():
            st.context = deque(st.context, maxlen=max(1, cfg.context_before))
            st.recent = deque(st.recent, maxlen=max(1, cfg.fidelity_window))

    # ------------------------------------------------------------------ inputs
    def on_salience(self, rec: SalienceRecord) -> list[ExperienceRecord]:
        """Take a Salience; returns records to store now (possibly none)."""
        self._count('salience_in')
        if rec.modality not in LATENT_MODALITIES:
            return self._decide(rec, None)
        st = self._mod(rec.modality)
        latent = st.latents.pop(rec.input_seq, None)
        if latent is not None:
            return self._decide(rec, latent)
        out: list[ExperienceRecord] = []
        st.saliences[rec.input_seq] = _Pending(rec, self._clock())
        while len(st.saliences) > self.cfg.pair_buffer:
            _, old = st.saliences.popitem(last=False)
            self._count('unpaired_salience')
            out += self._decide(old.salience, None)
        return out

    def on_latent(self, rec: LatentRecord) -> list[ExperienceRecord]:
        """Take a Latent; returns records to store now (possibly none)."""
        self._count('latent_in')
        st = self._mod(rec.modality)
        pending = st.saliences.pop(rec.input_seq, None)
        if pending is not None:
            return self._decide(pending.salience, rec)
        st.latents[rec.input_seq] = rec
        while len(st.latents) > self.cfg.pair_buffer:
            st.latents.popitem(last=False)
            self._count('unpaired_latent')
        return []

    def expire(self) -> list[ExperienceRecord]:
        """Decide saliences whose Latent did not arrive in time; returns records to store."""
        now = self._clock()
        out: list[ExperienceRecord] = []
        for st in self._mods.values():
            while st.saliences:
                seq, pending = next(iter(st.saliences.items()))
                if now - pending.arrived < self.cfg.pair_timeout_s:
                    break
                del st.saliences[seq]
                self._count('unpaired_salience')
                out += self._decide(pending.salience, None)
        return out

    # ---------------------------------------------------------------- decision
    def wants(self, sal: SalienceRecord) -> bool:
        """Whether the policy stores this input (context aside)."""
        cfg = self.cfg
        if cfg.mode == 'off' or sal.modality not in cfg.modalities:
            return False
        if self.metabolic_state and self.metabolic_state not in cfg.states:
            return False
        if cfg.mode == 'all':
            return True
        if not np.isfinite(sal.salience) or sal.salience < cfg.min_salience:
            return False
        if cfg.mode == 'attend':
            return bool(sal.attend)
        return True

    def _full_fidelity(self, st: _ModalityState, salience: float) -> bool:
        frac = self.cfg.full_fidelity_top_fraction
        st.recent.append(float(salience))
        if frac >= 1.0:
            return True
        if frac <= 0.0:
            return False
        if len(st.recent) < max(2, int(round(1.0 / frac))):
            # Too few samples for a quantile yet: keep everything verbatim.
            return True
        cut = float(np.quantile(np.fromiter(st.recent, float), 1.0 - frac))
        return salience >= cut

    def _decide(self, sal: SalienceRecord, latent: LatentRecord | None
                ) -> list[ExperienceRecord]:
        st = self._mod(sal.modality)
        if self.wants(sal):
            uid = self._uuid()
            out = [self._record(s, lat, 'context', 'summary', context_of=uid)
                   for s, lat in st.context] if self.cfg.context_before > 0 else []
            st.context.clear()
            full = self._full_fidelity(st, sal.salience)
            out.append(self._record(sal, latent, 'experience', 'full' if full else 'summary',
                                    uid=uid))
            st.after_left = self.cfg.context_after
            st.after_of = uid
            self._count('stored')
            self._count('context', len(out) - 1)
            return out
        if st.after_left > 0:
            st.after_left -= 1
            self._count('context')
            return [self._record(sal, latent, 'context', 'summary', context_of=st.after_of)]
        if self.cfg.context_before > 0:
            st.context.append((sal, latent))
        return []

    def _record(self, sal: SalienceRecord, latent: LatentRecord | None, kind: str,
                fidelity: str, uid: str = '', context_of: str | None = None
                ) -> ExperienceRecord:
        full = fidelity == 'full'
        extra: dict[str, Any] = {}
        codes = None
        codebook = 0
        embedding = None
        preview_format, preview, text = '', b'', ''
        if latent is not None:
            embedding = latent.embedding
            text = latent.text
            num = functools.partial(_rounded, digits=self.cfg.feature_digits)
            extra['features'] = {k: num(v) for k, v in latent.features.items()}
            if latent.model_version:  # whose embedding this is (SNARC compares like with like)
                extra['model_version'] = latent.model_version
            if full:
                codes = latent.codes
                codebook = latent.codebook_size
                extra['encoder'] = {
                    'recon_error': num(latent.recon_error),
                    'iterations': int(latent.iterations),
                    'energy_initial': num(latent.energy_initial),
                    'energy_final': num(latent.energy_final),
                    'converged': bool(latent.converged), 'halt_reason': latent.halt_reason,
                    'atp_spent': num(latent.atp_spent),
                    'encode_ms': num(latent.encode_ms)}
            if full or self.cfg.summary_keep_preview or latent.preview_format == 'text':
                preview_format, preview = latent.preview_format, latent.preview
        return ExperienceRecord(
            uuid=uid or self._uuid(), device_id=self.cfg.device_id, session=self.cfg.session,
            kind=kind, stamp=sal.stamp, modality=sal.modality, input_seq=sal.input_seq,
            surprise=sal.surprise, novelty=sal.novelty, arousal=sal.arousal,
            reward=sal.reward, conflict=sal.conflict, salience=sal.salience,
            threshold=sal.threshold, metabolic_state=self.metabolic_state, fidelity=fidelity,
            codes=codes, codebook_size=codebook, embedding=embedding,
            preview_format=preview_format, preview=preview, text=text, pose=self.pose,
            tags=self.cfg.tags, extra=extra, context_of=context_of, created_at=self._clock(),
            # What the encoder saw before refinement, for the experience's training input.
            codes_initial=latent.scored_codes if latent is not None and kind == 'experience'
            else None)

    # ------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """Checkpointable state: recent stored saliences per modality and counters."""
        return {'recent': {m: list(st.recent) for m, st in self._mods.items()},
                'counters': dict(self.counters), 'metabolic_state': self.metabolic_state}

    def restore(self, doc: dict[str, Any]) -> None:
        """Restore what state() returned (unknown or malformed parts are ignored)."""
        recent = doc.get('recent', {})
        if isinstance(recent, dict):
            for m, values in recent.items():
                if m in MODALITIES and isinstance(values, list):
                    st = self._mod(m)
                    st.recent.extend(float(v) for v in values
                                     if isinstance(v, (int, float)))
        counters = doc.get('counters', {})
        if isinstance(counters, dict):
            for k, v in counters.items():
                if isinstance(v, int):
                    self.counters[str(k)] = v
