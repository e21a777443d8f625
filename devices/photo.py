"""Photos and signatures as the bytes a filing carries: a JPEG of at most 1600 px and 300 KB, a signature PNG.

The backend takes attachments of at most 300 KB (307,200 bytes). `fit_jpeg` lowers the JPEG quality step by
step and, when even the lowest step is too big (a noisy frame), scales the image down and tries again. Nothing
but pixels leaves: no EXIF, no ICC profile, no comment (a camera may write its serial number or the time).
`signature_png` draws finger strokes black on white, trimmed to the ink, as a small PNG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageOps

MAX_SIDE = 1600
MAX_BYTES = 300 * 1024  # 307,200: the backend's limit for one attachment
QUALITIES = (85, 75, 65, 55, 45, 35)  # below 35 text on a document gets hard to read: scale down instead
MIN_SIDE = 16  # never scale below this; a 16 px JPEG is a few hundred bytes, so the loop always ends


class PhotoError(ValueError):
    """Not an image that can be sent (empty, wrong shape or type)."""


def to_pil(image) -> Image.Image:
    """numpy BGR (OpenCV order), BGRA, or grey, or a PIL image → an RGB or L PIL image with no metadata."""
    if isinstance(image, Image.Image):
        im = ImageOps.exif_transpose(image) or image  # a photo taken sideways shows upright; the tag is then dropped
        if im.mode in ("RGBA", "LA", "P", "PA"):
            im = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im).convert("RGB")
        elif im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
    elif isinstance(image, np.ndarray):
        arr = image
        if arr.size == 0 or arr.ndim not in (2, 3):
            raise PhotoError(f"not an image: shape {arr.shape}")
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim == 2:
            im = Image.fromarray(np.ascontiguousarray(arr), "L")
        elif arr.shape[2] in (3, 4):
            im = Image.fromarray(np.ascontiguousarray(arr[..., 2::-1]), "RGB")  # BGR(A) → RGB, alpha dropped
        else:
            raise PhotoError(f"not an image: {arr.shape[2]} channels")
    else:
        raise PhotoError(f"not an image: {type(image).__name__}")
    if im.width < 1 or im.height < 1:
        raise PhotoError("empty image")
    clean = Image.new(im.mode, im.size)
    clean.paste(im)  # a fresh image: im.info (exif, icc_profile, comment, dpi) stays behind
    return clean


def _scaled(im: Image.Image, factor: float) -> Image.Image:
    w, h = im.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0) if size != im.size else im


def _jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def fit_jpeg(image, max_side: int = MAX_SIDE, max_bytes: int = MAX_BYTES) -> bytes:
    """A JPEG of the image, long side ≤ max_side and ≤ max_bytes, aspect kept, no metadata."""
    im = to_pil(image)
    long_side = max(im.size)
    if long_side > max_side:
        im = _scaled(im, max_side / long_side)
    while True:
        data = b""
        for q in QUALITIES:
            data = _jpeg(im, q)
            if len(data) <= max_bytes:
                return data
        if max(im.size) <= MIN_SIDE:
            raise PhotoError("cannot fit the image")  # max_bytes below what any JPEG header needs
        # bytes grow with the area: shrink by the square root of the overshoot, a little more to land under
        factor = min(0.9, (max_bytes / len(data)) ** 0.5 * 0.95)
        factor = max(factor, MIN_SIDE / max(im.size))
        im = _scaled(im, factor)


def signature_png(
    strokes: Sequence[Sequence[tuple[float, float]]],
    width: float = 6.0,
    margin: int = 12,
    max_side: int = 1200,
) -> bytes:
    """Strokes (lists of (x, y) points, y up as Kivy has it) → PNG, black on white, trimmed to the ink.

    Returns b"" when there is no ink. A 1-bit PNG of a signature is a few KB, far below the 300 KB limit.
    """
    pts = [(float(x), float(y)) for s in strokes for (x, y) in s]
    if not pts:
        return b""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = width / 2 + margin
    span = max(x1 - x0, y1 - y0) + 2 * pad
    scale = min(1.0, max_side / span)  # a huge pad does not make a huge file
    w = max(1, int(round((x1 - x0 + 2 * pad) * scale)))
    h = max(1, int(round((y1 - y0 + 2 * pad) * scale)))
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    lw = max(1, int(round(width * scale)))

    def at(p):  # flip y: the screen counts up, images count down
        return ((p[0] - x0 + pad) * scale, (y1 - p[1] + pad) * scale)

    for s in strokes:
        line = [at(p) for p in s]
        if len(line) == 1:
            (x, y), r = line[0], lw / 2
            d.ellipse([x - r, y - r, x + r, y + r], fill=0)  # a dot (the 点 of a character) is ink too
        else:
            d.line(line, fill=0, width=lw, joint="curve")
            for x, y in (line[0], line[-1]):
                r = lw / 2
                d.ellipse([x - r, y - r, x + r, y + r], fill=0)  # round ends
    buf = io.BytesIO()
    im.convert("1", dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
    return buf.getvalue()
