"""Names of the preview formats and codecs (no numpy: parameter modules import it).

sage_common.previews encodes and decodes them; the encoders' parameters offer them as choices.
"""
from __future__ import annotations

# Image formats and their file name suffixes (reports write thumbnails as files).
IMAGE_SUFFIX = {'webp': '.webp', 'jpeg': '.jpg'}
IMAGE_FORMATS = tuple(IMAGE_SUFFIX)
AUDIO_FORMAT = 'wav'
# Audio preview codecs (the WAV's data format) and libsndfile's name for each.
AUDIO_CODECS = {'ima_adpcm': 'IMA_ADPCM', 'gsm610': 'GSM610'}
# GSM 06.10 codes 8 kHz speech only.
GSM_RATE = 8000
