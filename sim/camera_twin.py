"""Camera twin: serves image files as grey frames, looped, paced at N frames per second.

`synth_frame` renders a QR code into a realistic camera frame (texture, light gradient, perspective
tilt, blur, sensor noise) for tests and benchmarks; `noise_frame` is a frame with nothing to find.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import qrcode
from PIL import Image, ImageFilter
from qrcode.constants import ERROR_CORRECT_M

from devices.base import DeviceStatus


class FileFrameSource:
    def __init__(self, paths: Sequence[str | Path], fps: float = 15.0, loop: bool = True, pace: bool = True):
        self.frames = [np.asarray(Image.open(p).convert("L")) for p in paths]
        self.fps = fps
        self.loop = loop
        self.pace = pace
        self._i = 0
        self._next = time.monotonic()
        self._closed = False

    @classmethod
    def from_arrays(cls, frames: Sequence[np.ndarray], fps: float = 15.0, loop: bool = True, pace: bool = True):
        src = cls([], fps, loop, pace)
        src.frames = list(frames)
        return src

    def status(self) -> DeviceStatus:
        return DeviceStatus.NO_DEVICE if self._closed or not self.frames else DeviceStatus.ONLINE

    def read(self) -> np.ndarray | None:
        if self._closed or not self.frames:
            return None
        if self._i >= len(self.frames):
            if not self.loop:
                return None
            self._i = 0
        if self.pace:
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next, time.monotonic() - 1.0 / self.fps) + 1.0 / self.fps
        frame = self.frames[self._i]
        self._i += 1
        return frame

    def close(self) -> None:
        self._closed = True


def synth_frame(
    text: str,
    size: tuple[int, int] = (1280, 720),
    qr_px: int = 260,
    offset: tuple[int, int] = (380, 150),
    tilt: float = 0.08,
    blur: float = 1.2,
    noise: float = 8.0,
    seed: int = 0,
) -> np.ndarray:
    """A grey camera frame with a QR code held up in it, slightly tilted, blurred and noisy."""
    rng = np.random.default_rng(seed)
    w, h = size
    # background: a smooth light gradient plus coarse texture (a desk, a hand, a wall)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = 90 + 60 * (xx / w) + 30 * (yy / h)
    tex = np.asarray(Image.fromarray(rng.integers(0, 255, (h // 16, w // 16), dtype=np.uint8)).resize((w, h)))
    bg = bg + (tex.astype(np.float32) - 128) * 0.25
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    qr = qrcode.QRCode(border=4, error_correction=ERROR_CORRECT_M)
    qr.add_data(text)
    qr.make(fit=True)
    code = qr.make_image(fill_color="black", back_color="white").get_image().convert("L").resize((qr_px, qr_px))
    # perspective-ish: pull corners in unevenly, as when a phone is held at a slight angle
    d = int(qr_px * tilt)
    r = random.Random(seed)
    quad = (r.randint(0, d), r.randint(0, d), r.randint(0, d), qr_px - r.randint(0, d),
            qr_px - r.randint(0, d), qr_px - r.randint(0, d), qr_px - r.randint(0, d), r.randint(0, d))
    warped = code.transform((qr_px, qr_px), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR, fillcolor=255)
    # screen glare / paper is not pure white or black
    arr = np.asarray(warped).astype(np.float32) * 0.75 + 30
    canvas.paste(Image.fromarray(arr.astype(np.uint8)), offset)
    canvas = canvas.filter(ImageFilter.GaussianBlur(blur))
    out = np.asarray(canvas).astype(np.float32) + rng.normal(0, noise, (h, w))
    return np.clip(out, 0, 255).astype(np.uint8)


def noise_frame(size: tuple[int, int] = (1280, 720), seed: int = 0) -> np.ndarray:
    w, h = size
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
