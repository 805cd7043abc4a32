"""Colour conversion to rgb8 against ITU-R BT.601 values."""
import numpy as np
import pytest

from sage_sensors.color import fit, to_rgb8, yuv_to_rgb_bt601

# (Y, Cb, Cr) -> RGB of 100% colour bars in BT.601 studio swing (Rec. 601 table values)
BARS = [((16, 128, 128), (0, 0, 0)), ((235, 128, 128), (255, 255, 255)),
        ((81, 90, 240), (255, 0, 0)), ((145, 54, 34), (0, 255, 0)),
        ((41, 240, 110), (0, 0, 255))]


@pytest.mark.parametrize('ycbcr,rgb', BARS)
def test_reference_formula_gives_the_bt601_colour_bars(ycbcr, rgb):
    assert np.allclose(yuv_to_rgb_bt601(*ycbcr), rgb, atol=2)


@pytest.mark.parametrize('ycbcr,rgb', BARS)
def test_yuyv_frames_convert_to_the_bt601_colour(ycbcr, rgb):
    y, u, v = ycbcr
    yuyv = np.tile(np.array([y, u, y, v], np.uint8), (4, 4))      # 4 rows of 8 pixels
    out = to_rgb8(yuyv, 'yuyv')
    assert out.shape == (4, 8, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).max() <= 3


def test_uyvy_is_the_same_colour_in_another_byte_order():
    y, u, v = 81, 90, 240
    out = to_rgb8(np.tile(np.array([u, y, v, y], np.uint8), (2, 2)), 'uyvy')
    assert np.abs(out.astype(int) - (255, 0, 0)).max() <= 3


def test_yuyv_keeps_each_pixels_own_luma():
    yuyv = np.array([[16, 128, 235, 128]], np.uint8)   # black then white, neutral chroma
    out = to_rgb8(yuyv, 'yuyv')
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [255, 255, 255]


def test_bgr_and_gray_and_mono16_convert_correctly():
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 200      # blue in OpenCV order
    assert to_rgb8(bgr, 'bgr8')[0, 0].tolist() == [0, 0, 200]
    gray = np.full((2, 3), 77, np.uint8)
    assert to_rgb8(gray, 'mono8').tolist() == [[[77] * 3] * 3] * 2
    mono16 = np.full((1, 1), 0xAB12, np.uint16)
    assert to_rgb8(mono16, 'mono16')[0, 0].tolist() == [0xAB] * 3
    bgra = np.array([[[1, 2, 3, 4]]], np.uint8)
    assert to_rgb8(bgra, 'bgra8')[0, 0].tolist() == [3, 2, 1]


def test_rgb_passes_through_contiguous():
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)[:, ::2]
    out = to_rgb8(rgb, 'rgb8')
    assert out.flags['C_CONTIGUOUS'] and np.array_equal(out, rgb)


def test_mismatched_shapes_and_unknown_formats_are_rejected():
    with pytest.raises(ValueError, match='bgr8'):
        to_rgb8(np.zeros((2, 2), np.uint8), 'bgr8')
    with pytest.raises(ValueError, match='unknown'):
        to_rgb8(np.zeros((2, 2, 3), np.uint8), 'hsv')
    with pytest.raises(ValueError, match='pixel pairs'):
        to_rgb8(np.zeros((2, 6), np.uint8), 'yuyv')


def test_fit_resizes_only_when_needed():
    img = np.zeros((480, 640, 3), np.uint8)
    assert fit(img, 640, 480) is img
    assert fit(img, 320, 240).shape == (240, 320, 3)
