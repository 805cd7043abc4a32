"""The audio encoder's 'voice' feature on recordings it was not made from: every phrase of a
real telephone conversation and a read sentence rise above it; room noise at the scenes' levels
and real impacts stay far below (Silero VAD from the silero-vad wheel)."""
from __future__ import annotations

import numpy as np
import pytest

from sage_common.params import resolve
from sage_encoders import audio_encoder_params
from sage_encoders.audio_core import AudioEncoderCore
from sage_eval import media, room
from sage_eval.realistic import speech_clips
from sage_eval.room import at_active

SR = media.SAMPLE_RATE
HOP_S = 4096 / SR
MIN_PROB = 0.3   # snarc modality_state.VOICE_MIN_PROB: where a window holds a voice
WARMUP_S = 3.0   # the model learns the room first (a fresh state scores noise up to 0.2)


def _windows(audio: np.ndarray, t0: float = 100.0, values: dict | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """(stamp of each window's newest hop, its 'voice') as the audio encoder makes them."""
    pytest.importorskip('silero_vad', reason='silero-vad is installed by scripts/install.sh')
    core = AudioEncoderCore.from_params(resolve(audio_encoder_params.PARAMS, values or {}))
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
    recs = []
    for i in range(0, pcm.size - 511, 512):
        recs += core.push(pcm[i:i + 512], t0 + i / SR, SR, 0.0)
    assert core.voice_error is None, core.voice_error
    window_s = core.cfg.window_samples / SR
    return (np.array([r.stamp + window_s - HOP_S - t0 for r in recs]),
            np.array([r.features['voice'] for r in recs]))


def test_every_phrase_of_a_real_conversation_holds_a_voice_and_the_lead_in_none():
    audio = media.load_audio('conversation')
    starts, voice = _windows(audio)
    utts = [u for u in media.utterances() if u.end - u.start >= 0.5]
    assert len(utts) >= 8
    peaks = [voice[(starts >= u.start - HOP_S) & (starts <= u.end)].max() for u in utts]
    assert min(peaks) >= 0.4, list(zip([u.text[:30] for u in utts], np.round(peaks, 2)))
    lead_in = voice[starts + HOP_S <= media.utterances()[0].start - 0.5]
    assert lead_in.size > 4 and lead_in.max() < MIN_PROB, np.round(lead_in, 2)


def test_room_noise_and_impacts_hold_no_voice_but_a_read_sentence_over_a_fan_does():
    rng = np.random.default_rng(7)
    n = 20 * SR
    calm = (room.fan(rng, n, -30.0) + room.mains_hum(n, 50.0, -57.0)
            + room.coloured_noise(rng, n, 1.0, -59.0))
    impacts = calm.copy()
    for k, name in enumerate(media.IMPACT_SOUNDS * 2):
        hit = media.load_audio(name)
        at = (2 + 3 * k) * SR
        impacts[at:at + hit.size] += 0.5 * hit[:n - at]
    for audio in (calm, impacts):
        starts, voice = _windows(audio)
        # The first impact of a kind, this loud, scores up to 0.26; the next ones 0.
        assert voice[starts >= WARMUP_S].max() < MIN_PROB, np.round(voice, 2)
    sentence = media.load_audio('arctic_a0007')
    gain = room.db_to_amp(-24.0) / room.active_rms(sentence)   # about 6 dB above the fan
    speech = calm.copy()
    speech[5 * SR:5 * SR + sentence.size] += gain * sentence
    starts, voice = _windows(speech)
    during = (starts >= 5.0) & (starts <= 5.0 + sentence.size / SR)
    assert voice[during].max() >= 0.6
    assert voice[(starts >= WARMUP_S) & (starts < 4.5)].max() < MIN_PROB


def test_soft_phrases_under_a_fan_are_heard_within_a_second_through_the_gate_and_makeup():
    """Every phrase of the conversation (and the read sentence) alone, 3 dB softer than the
    fan under it (-33 dBFS against -30), 6 s apart. Silero on the raw stream is slow to be
    sure of a voice in noise, and of some phrases never; the room's steady spectrum taken
    away (voice.denoise) leaves the voice quieter than it was, which Silero also scores
    low; raised again by voice.denoise.makeup_db, each phrase is sure (0.5) within a second
    of its start (subtracting 1.5x the room), and sooner when the subtraction also takes
    the room's ripple (voice.denoise.over 8, the profile's)."""
    rng = np.random.default_rng(12)
    clips = [x for _, x in speech_clips()]
    starts = [8.0 + 6.0 * k for k in range(len(clips))]
    n = int((starts[-1] + 6.0) * SR)
    audio = (room.fan(rng, n, -30.0) + room.mains_hum(n, 50.0, -57.0)
             + room.coloured_noise(rng, n, 1.0, -59.0))
    for s, clip in zip(starts, clips):
        x = at_active(clip, -33.0)
        audio[int(s * SR):int(s * SR) + x.size] += x
    late = {}
    for name, values in (('profile', {}), ('raw', {'voice.denoise.enabled': False}),
                         ('over 1.5', {'voice.denoise.over': 1.5}),
                         ('over 1.5, no makeup', {'voice.denoise.over': 1.5,
                                                  'voice.denoise.makeup_db': 0.0})):
        hop_starts, voice = _windows(audio, values=values)
        ends = hop_starts + HOP_S
        late[name] = [next((e - s for e, v in zip(ends, voice) if s <= e <= s + 3.0
                            and v >= 0.5), 99.0) for s in starts]
        if name == 'profile':
            assert voice[(ends >= WARMUP_S) & (ends < starts[0])].max() < MIN_PROB
    assert max(late['profile']) <= 1.0, np.round(late['profile'], 2)
    for name in ('over 1.5, no makeup', 'raw'):  # 8 of 11 late without makeup on this seed
        assert sum(t > 1.0 for t in late[name]) >= 3, (name, np.round(late[name], 2))
    # Mean time to sure on this seed: 0.33 s with the profile, 0.50 s subtracting 1.5x.
    assert np.mean(late['profile']) <= np.mean(late['over 1.5']) - 0.1, \
        (np.round(late['profile'], 2), np.round(late['over 1.5'], 2))
