"""Stored-experience previews on real photos and recordings: size and fidelity of each format."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.signal import stft

from sage_common.previews import decode_audio, decode_image, encode_audio, encode_image
from sage_eval import media

SIZE = (64, 48)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, SIZE, interpolation=cv2.INTER_AREA)


def _baseline_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(_thumb(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def test_webp_thumbnails_of_real_photos_are_smaller_and_closer_than_baseline_jpeg() -> None:
    webp, jpeg, base, psnr_webp, psnr_base = [], [], [], [], []
    for name in media.EVAL_PHOTOS:
        rgb = media.photo(name)
        small = _thumb(rgb)
        w = encode_image(rgb, SIZE, 'webp', 70)
        j = encode_image(rgb, SIZE, 'jpeg', 70)
        b = _baseline_jpeg(rgb, 70)
        got_w, got_j, got_b = decode_image(w), decode_image(j), decode_image(b)
        assert got_w is not None and got_w.shape == (48, 64, 3)
        # Optimised Huffman tables change the bytes, never the pixels.
        assert got_j is not None and np.array_equal(got_j, got_b)
        webp.append(len(w))
        jpeg.append(len(j))
        base.append(len(b))
        psnr_webp.append(cv2.PSNR(small, got_w))
        psnr_base.append(cv2.PSNR(small, got_b))
    assert np.mean(jpeg) < 0.85 * np.mean(base)
    assert np.mean(webp) < 0.7 * np.mean(base)
    assert np.mean(psnr_webp) > np.mean(psnr_base) > 28.0


def _log_spec(x: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.abs(stft(x, 8000, nperseg=256)[2]) + 1e-5)


@pytest.mark.parametrize('name', ['conversation', 'arctic_a0007', 'car_door', 'boom'])
def test_audio_previews_of_real_recordings_are_a_quarter_of_pcm_and_sound_the_same(name) -> None:
    x = media.load_audio(name, 8000)
    clip = (x[len(x) // 2 - 2000:len(x) // 2 + 2000] if len(x) >= 4000
            else np.pad(x, (0, 4000 - len(x))))
    pcm = np.round(clip * 32767).astype(np.int16)
    data = encode_audio(pcm, 8000)
    assert len(data) <= 0.27 * pcm.nbytes
    got, rate = decode_audio(data, 'wav')
    assert rate == 8000 and 4000 <= len(got) < 4000 + 64  # ADPCM pads its last block
    got = got[:4000]
    ref = _log_spec(pcm / 32768.0)
    loud = ref > ref.max() - 60  # bins within 60 dB of the loudest
    err = float(np.mean(np.abs(_log_spec(got) - ref)[loud]))
    assert err < 4.0, err  # 1.3-3.6 dB here; 6-bit PCM of the same speech: 5.8-10.5
    # The older raw previews still read back.
    raw, raw_rate = decode_audio(pcm.astype('<i2').tobytes(), 's16le')
    assert raw_rate == 8000 and np.allclose(raw, pcm / 32768.0)


def test_previews_that_do_not_decode_are_none_or_a_clear_error() -> None:
    assert decode_image(b'') is None and decode_image(b'\x00' * 50) is None
    with pytest.raises(ValueError, match='does not decode'):
        decode_audio(b'RIFF' + bytes(40), 'wav')
    with pytest.raises(ValueError, match='audio preview format'):
        decode_audio(b'', 'mp3')
    with pytest.raises(ValueError, match='image preview format'):
        encode_image(np.zeros((8, 8, 3), np.uint8), SIZE, 'png', 70)
