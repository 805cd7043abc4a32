"""Stored-experience previews on real photos and recordings: size and fidelity of each format."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.signal import stft

from sage_common.params import resolve
from sage_common.previews import decode_audio, decode_image, encode_audio, encode_image
from sage_encoders import audio_encoder_params as params
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


# codec: (largest share of 16-bit PCM's bytes, largest mean spectral error in dB).
_CODEC_BOUNDS = {'ima_adpcm': (0.27, 4.0),  # 2,108 B; 1.3-3.6 dB on these clips
                 'gsm610': (0.12, 5.5)}     # 906 B; 4.0-5.1 dB (6-bit PCM: 5.8-10.5)


@pytest.mark.parametrize('codec', list(_CODEC_BOUNDS))
@pytest.mark.parametrize('name', ['conversation', 'arctic_a0007', 'car_door', 'boom'])
def test_audio_previews_of_real_recordings_are_small_and_sound_the_same(name, codec) -> None:
    x = media.load_audio(name, 8000)
    clip = (x[len(x) // 2 - 2000:len(x) // 2 + 2000] if len(x) >= 4000
            else np.pad(x, (0, 4000 - len(x))))
    pcm = np.round(clip * 32767).astype(np.int16)
    share, max_err = _CODEC_BOUNDS[codec]
    data = encode_audio(pcm, 8000, codec)
    assert len(data) <= share * pcm.nbytes
    got, rate = decode_audio(data, 'wav')
    assert rate == 8000 and 4000 <= len(got) < 4000 + 640  # codecs pad their last block
    got = got[:4000]
    ref = _log_spec(pcm / 32768.0)
    loud = ref > ref.max() - 60  # bins within 60 dB of the loudest
    err = float(np.mean(np.abs(_log_spec(got) - ref)[loud]))
    assert err < max_err, err
    # The older raw previews still read back.
    raw, raw_rate = decode_audio(pcm.astype('<i2').tobytes(), 's16le')
    assert raw_rate == 8000 and np.allclose(raw, pcm / 32768.0)


def test_gsm_previews_take_8_khz_only_and_unknown_codecs_are_refused() -> None:
    with pytest.raises(ValueError, match='8000'):
        encode_audio(np.zeros(8000, np.int16), 16000, 'gsm610')
    with pytest.raises(ValueError, match='codec'):
        encode_audio(np.zeros(800, np.int16), 8000, 'mp3')
    values = resolve(params.PARAMS, {'preview.codec': 'gsm610', 'preview.rate': 16000})
    assert any('gsm610' in e for e in params.validate(values))


def test_previews_that_do_not_decode_are_none_or_a_clear_error() -> None:
    assert decode_image(b'') is None and decode_image(b'\x00' * 50) is None
    with pytest.raises(ValueError, match='does not decode'):
        decode_audio(b'RIFF' + bytes(40), 'wav')
    with pytest.raises(ValueError, match='audio preview format'):
        decode_audio(b'', 'mp3')
    with pytest.raises(ValueError, match='image preview format'):
        encode_image(np.zeros((8, 8, 3), np.uint8), SIZE, 'png', 70)
