"""Attachments: a JPEG within 1600 px and 300 KB whatever the camera gives, no metadata; signature PNGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from devices.photo import MAX_BYTES, MAX_SIDE, PhotoError, fit_jpeg, signature_png
from sim.camera_twin import document_frame, face_frame

pytestmark = pytest.mark.timeout(300)


def decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()  # decodes the whole image, not only the header
    return im


def assert_fits(data: bytes, in_w: int, in_h: int) -> Image.Image:
    assert data[:3] == b"\xff\xd8\xff" and len(data) <= MAX_BYTES == 307_200
    im = decoded(data)
    assert im.format == "JPEG"
    w, h = im.size
    assert max(w, h) <= MAX_SIDE
    # aspect kept: each side within a few pixels of the same scale (rounding at each scaling step)
    r = max(w, h) / max(in_w, in_h)
    assert abs(w - in_w * r) <= 3 and abs(h - in_h * r) <= 3
    return im


def noisy(w: int, h: int, sigma: float, seed: int, colour: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 120 * (xx / max(w, 1)) + 40 * (yy / max(h, 1))
    shape = (h, w, 3) if colour else (h, w)
    if colour:
        base = base[..., None]
    return np.clip(base + rng.normal(0, sigma, shape), 0, 255).astype(np.uint8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(1, 2600),
    h=st.integers(1, 2600),
    sigma=st.sampled_from([0.0, 2.0, 10.0, 40.0, 128.0]),
    colour=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_any_frame_fits_both_limits_and_decodes(w, h, sigma, colour, seed):
    assert_fits(fit_jpeg(noisy(w, h, sigma, seed, colour)), w, h)


@pytest.mark.parametrize("size", [(1920, 1080), (3264, 2448), (1080, 1920)])
def test_pure_noise_at_camera_sizes_is_scaled_down_until_it_fits(size):
    w, h = size
    frame = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert_fits(fit_jpeg(frame), w, h)


def test_noise_that_does_not_fit_at_the_lowest_quality_is_scaled_down():
    frame = np.random.default_rng(1).integers(0, 256, (1000, 1500, 3), dtype=np.uint8)
    im = assert_fits(fit_jpeg(frame), 1500, 1000)
    assert max(im.size) < 1500


def test_a_document_page_keeps_1600_px_and_good_quality():
    frame = document_frame((1920, 1080))
    data = fit_jpeg(frame)
    im = assert_fits(data, 1920, 1080)
    assert im.size == (1600, 900)
    assert len(data) < 250_000


def test_small_images_are_not_enlarged():
    im = assert_fits(fit_jpeg(face_frame((640, 480))), 640, 480)
    assert im.size == (640, 480)


def test_bgr_order_is_respected():
    blue_bgr = np.zeros((32, 32, 3), np.uint8)
    blue_bgr[..., 0] = 255
    r, g, b = decoded(fit_jpeg(blue_bgr)).convert("RGB").getpixel((16, 16))
    assert b > 240 and r < 15 and g < 15


def test_grey_stays_grey_and_bgra_loses_alpha():
    assert decoded(fit_jpeg(np.full((40, 60), 128, np.uint8))).mode == "L"
    bgra = np.zeros((40, 60, 4), np.uint8)
    bgra[..., 2] = 255
    assert decoded(fit_jpeg(bgra)).mode == "RGB"


def test_transparent_pil_image_goes_on_white():
    im = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    px = decoded(fit_jpeg(im)).convert("RGB").getpixel((25, 25))
    assert min(px) > 245


def test_metadata_is_stripped():
    im = Image.fromarray(noisy(800, 600, 5, 3)[..., ::-1].copy(), "RGB")
    exif = Image.Exif()
    exif[0x010F] = "ACME Camera"  # Make
    exif[0x0110] = "SN-12345"  # Model
    exif[0x0132] = "2026:12:01 10:00:00"  # DateTime
    src = io.BytesIO()
    icc = b"\0" * 128  # any ICC blob: it must not be copied
    im.save(src, "JPEG", exif=exif.tobytes(), icc_profile=icc, comment=b"terminal 7")
    with_meta = Image.open(io.BytesIO(src.getvalue()))
    assert with_meta.info.get("exif") and with_meta.info.get("icc_profile")
    data = fit_jpeg(with_meta)
    out = decoded(data)
    assert "exif" not in out.info and "icc_profile" not in out.info and "comment" not in out.info
    assert b"Exif" not in data and b"ACME" not in data and b"SN-12345" not in data and b"terminal 7" not in data


def test_exif_orientation_is_applied_before_it_is_dropped():
    im = Image.new("RGB", (200, 100), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    assert decoded(fit_jpeg(Image.open(io.BytesIO(buf.getvalue())))).size == (100, 200)


@pytest.mark.parametrize("bad", [np.zeros((0, 10), np.uint8), np.zeros((5, 5, 2), np.uint8),
                                 np.zeros((2, 2, 2, 2), np.uint8), "not an image"])
def test_not_an_image_is_a_photo_error(bad):
    with pytest.raises(PhotoError):
        fit_jpeg(bad)


def test_an_impossible_byte_limit_is_a_photo_error_not_a_loop():
    with pytest.raises(PhotoError):
        fit_jpeg(noisy(400, 300, 30, 1), max_bytes=100)


def test_smaller_limits_are_honoured():
    data = fit_jpeg(document_frame((1920, 1080)), max_side=800, max_bytes=40_000)
    assert len(data) <= 40_000 and max(decoded(data).size) <= 800


# ------------------------------------------------------------------ signatures


def ink_box(png: bytes) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    im = decoded(png).convert("L")
    dark = np.asarray(im) < 128
    if not dark.any():
        return im.size, None
    ys, xs = np.nonzero(dark)
    return im.size, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


def test_no_strokes_no_png():
    assert signature_png([]) == b""
    assert signature_png([[], []]) == b""


def test_signature_is_trimmed_black_on_white():
    strokes = [[(300, 300), (400, 350), (500, 300)], [(350, 250), (450, 250)]]
    png = signature_png(strokes, width=6, margin=12)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    size, box = ink_box(png)
    assert box is not None
    w, h = size
    # the picture is the ink plus the margin: 200 × 100 of strokes, 6 px pen, 12 px margin each side
    assert (w, h) == (200 + 2 * 15, 100 + 2 * 15)
    assert box[0] <= 15 and box[1] <= 15 and w - 1 - box[2] <= 15 and h - 1 - box[3] <= 15
    corners = decoded(png).convert("L")
    assert corners.getpixel((0, 0)) == 255 and corners.getpixel((w - 1, h - 1)) == 255


def test_signature_y_axis_points_up_as_on_screen():
    # one short stroke high on the pad (big y) and a long one low: the long one is at the bottom of the PNG
    png = signature_png([[(0, 100), (10, 100)], [(0, 0), (200, 0)]], margin=0, width=4)
    im = np.asarray(decoded(png).convert("L")) < 128
    bottom_row, top_row = im[-2], im[1]
    assert bottom_row.sum() > top_row.sum()


def test_a_single_tap_is_a_dot_of_ink():
    _, box = ink_box(signature_png([[(50, 50)]], width=10))
    assert box is not None


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(0, 5000), st.floats(0, 5000)), min_size=1, max_size=60),
                min_size=1, max_size=30))
def test_any_scribble_is_a_small_png(strokes):
    png = signature_png(strokes)
    assert 0 < len(png) <= MAX_BYTES
    size, box = ink_box(png)
    assert max(size) <= 1200 + 2 and box is not None
