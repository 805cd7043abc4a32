"""Small previews kept with stored experiences: image thumbnails and audio clips.

A preview is for a person looking back at what the robot attended to, and it is most of a stored
row's bytes, so the formats are chosen for size at a quality a person can judge:

- images: WebP by default (a 64x48 thumbnail of a real photo: 733 B on average at quality 70,
  PSNR 32.7 dB, against 1,339 B and 31.0 dB for baseline JPEG at the same setting), or JPEG with
  optimised Huffman tables (1,022 B, the same pixels as baseline JPEG);
- audio: a WAV file at 8 kHz, in one of two codecs any audio tool plays:
  - 4-bit IMA ADPCM: a quarter of 16-bit PCM, 2,108 B per 0.5 s; spectral error 1.3-3.6 dB on
    recorded speech and sounds (libsndfile's Ogg Opus is no smaller at 0.5 s);
  - GSM 06.10, the speech codec of GSM phones: 906 B per 0.5 s; spectral error 4.0-5.1 dB on
    the same clips (6-bit PCM: 5.8-10.5 dB). Speech stays clear, other sounds lose detail.

The preview's format travels in the message's `preview_format` ('webp', 'jpeg', 'wav', 'text',
or the older raw 's16le'); `decode_image` and `decode_audio` read every image and audio format.
"""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from sage_common.preview_formats import AUDIO_CODECS, AUDIO_FORMAT, GSM_RATE, IMAGE_FORMATS


def encode_image(rgb: np.ndarray, size: tuple[int, int], fmt: str, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> a `size` (width, height) thumbnail in `fmt`; b'' if it fails."""
    # lazy: keeps cv2 out of this module's import
    import cv2
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f'image preview format {fmt!r}, expected one of {IMAGE_FORMATS}')
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    if fmt == 'webp':
        ok, buf = cv2.imencode('.webp', bgr, [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                                             cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    return buf.tobytes() if ok else b''


def decode_image(data: bytes) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB from WebP or JPEG bytes, or None when they do not decode."""
    # lazy: keeps cv2 out of this module's import
    import cv2
    if not data:
        return None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    return np.ascontiguousarray(img[:, :, ::-1])


def encode_audio(samples: np.ndarray, rate: int, codec: str = 'ima_adpcm') -> bytes:
    """Mono samples (int16, or float in [-1, 1]) -> WAV bytes in `codec` at `rate` Hz."""
    if codec not in AUDIO_CODECS:
        raise ValueError(f'audio preview codec {codec!r}, expected one of {tuple(AUDIO_CODECS)}')
    if codec == 'gsm610' and int(rate) != GSM_RATE:
        raise ValueError(f'the gsm610 audio preview codec takes {GSM_RATE} Hz, not {rate}')
    x = np.asarray(samples)
    if x.size == 0:
        return b''
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / 32768.0
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0).astype(np.float32), int(rate), format='WAV',
             subtype=AUDIO_CODECS[codec])
    return buf.getvalue()


def decode_audio(data: bytes, fmt: str, rate: int = 8000) -> tuple[np.ndarray, int]:
    """(float32 mono samples, sample rate) of a 'wav' or raw 's16le' (at `rate`) preview.

    Raises:
        ValueError: an unknown format or bytes that do not decode.
    """
    if fmt == 's16le':
        return np.frombuffer(data, '<i2').astype(np.float32) / 32768.0, rate
    if fmt != AUDIO_FORMAT:
        raise ValueError(f'audio preview format {fmt!r}, expected wav or s16le')
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype='float32', always_2d=True)
    except RuntimeError as err:  # soundfile's LibsndfileError is one (not in older releases)
        raise ValueError(f'audio preview does not decode: {err}') from err
    return audio.mean(axis=1), int(sr)
