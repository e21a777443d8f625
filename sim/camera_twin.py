"""Camera twin: serves image files as grey frames, looped, paced at N frames per second.

`synth_frame` renders a QR code into a realistic camera frame (texture, light gradient, perspective
tilt, blur, sensor noise) for tests and benchmarks; `noise_frame` is a frame with nothing to find.
`document_frame` is a colour frame of a form page on a desk, Chinese text drawn with the kiosk's CJK font;
`face_frame` draws a synthetic, fictional face (no real person) that OpenCV's Haar frontal-face cascade finds.
`PictureTwin` is a photo camera twin (preview, still capture) that can be made to fail mid-capture.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import qrcode
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from devices.base import DeviceStatus
from devices.camera import CameraError, to_grey


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


# ------------------------------------------------------------------ photo frames (colour, BGR as OpenCV gives)

DOC_LINES = (
    "城乡居民养老保险参保登记表",
    "姓名：张三（示例）    性别：男",
    "公民身份号码：110101********0000",
    "户籍地址：示范镇示范村三组",
    "缴费档次：每年 500 元",
    "本人承诺以上内容真实有效。",
    "申请人签名：__________",
    "示范镇人社服务站    2026 年 12 月 1 日",
)


@cache
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from kiosk.app import FontMissing, find_cjk_font

    try:
        return ImageFont.truetype(find_cjk_font(), px)
    except (FontMissing, OSError):  # no CJK font on this machine: boxes, but still a page with text on it
        return ImageFont.load_default(px)


def _to_bgr(img: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(img.convert("RGB"))[..., ::-1])


def document_frame(
    size: tuple[int, int] = (1920, 1080),
    lines: Sequence[str] = DOC_LINES,
    angle: float = 2.0,
    noise: float = 3.0,
    seed: int = 0,
) -> np.ndarray:
    """A form page on a dark desk, seen from above by a document camera: BGR uint8 of shape (h, w, 3)."""
    w, h = size
    rng = np.random.default_rng(seed)
    ph = int(h * 0.9)
    pw = int(ph / 1.414)  # A4 upright
    page = Image.new("RGB", (pw, ph), (250, 248, 240))
    d = ImageDraw.Draw(page)
    margin = pw // 10
    title_px = max(10, pw // 16)
    body_px = max(8, pw // 26)
    y = margin
    d.text((pw // 2, y), lines[0], font=_font(title_px), fill=(20, 20, 20), anchor="mt")
    y += int(title_px * 2.2)
    for line in lines[1:]:
        d.text((margin, y), line, font=_font(body_px), fill=(25, 25, 30))
        y += int(body_px * 1.9)
        d.line([(margin, y - body_px * 0.35), (pw - margin, y - body_px * 0.35)], fill=(180, 180, 180), width=1)
    # a red round seal with a star, as on a stamped form (drawn, not a real seal)
    r = pw // 9
    cx, cy = pw - margin - r, y + r
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(200, 30, 30), width=max(2, r // 12))
    star = [(cx + r * 0.45 * np.cos(a), cy - r * 0.45 * np.sin(a))
            for a in np.pi / 2 + np.arange(10) * np.pi / 5 * 2 % (2 * np.pi)]
    d.polygon([star[i] for i in (0, 2, 4, 1, 3)], fill=(200, 30, 30))
    page = page.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(70, 60, 50))
    desk = Image.new("RGB", (w, h), (70, 60, 50))
    desk.paste(page, ((w - page.width) // 2, (h - page.height) // 2))
    arr = np.asarray(desk).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    light = 1.0 - 0.12 * (((xx - w * 0.4) / w) ** 2 + ((yy - h * 0.4) / h) ** 2)  # the lamp is off to one side
    arr = arr * light[..., None] + rng.normal(0, noise, (h, w, 3))
    return _to_bgr(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))


def _draw_face(d: ImageDraw.ImageDraw, cx: float, cy: float, fw: float, skin=(215, 165, 135)) -> None:
    """A plain cartoon face: skin-tone oval, hair, dark brows and eyes, a shaded nose, a mouth."""
    fh = fw * 1.3
    d.ellipse([cx - fw * 0.55, cy - fh * 0.62, cx + fw * 0.55, cy + fh * 0.1], fill=(40, 30, 25))  # hair
    d.rectangle([cx - fw * 0.2, cy + fh * 0.3, cx + fw * 0.2, cy + fh * 0.7], fill=(190, 140, 110))  # neck
    d.ellipse([cx - fw * 1.1, cy + fh * 0.55, cx + fw * 1.1, cy + fh * 1.6], fill=(60, 70, 110))  # shoulders
    d.ellipse([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], fill=skin)
    ey = cy - fh * 0.1
    for side in (-1, 1):
        ex = cx + side * fw * 0.2
        d.rectangle([ex - fw * 0.11, ey - fh * 0.09, ex + fw * 0.11, ey - fh * 0.06], fill=(50, 35, 30))  # brow
        d.ellipse([ex - fw * 0.09, ey - fh * 0.035, ex + fw * 0.09, ey + fh * 0.035], fill=(245, 245, 245))
        d.ellipse([ex - fw * 0.045, ey - fh * 0.035, ex + fw * 0.045, ey + fh * 0.035], fill=(30, 20, 20))
    d.polygon([(cx, ey), (cx - fw * 0.07, cy + fh * 0.12), (cx + fw * 0.07, cy + fh * 0.12)], fill=(185, 130, 105))
    d.ellipse([cx - fw * 0.16, cy + fh * 0.2, cx + fw * 0.16, cy + fh * 0.27], fill=(150, 60, 60))


def face_frame(
    size: tuple[int, int] = (1280, 720),
    centre: tuple[float, float] = (0.5, 0.5),
    width: float = 0.3,
    faces: Sequence[tuple[tuple[float, float], float]] = (),
    noise: float = 4.0,
    seed: int = 0,
) -> np.ndarray:
    """A colour frame (BGR) with one synthetic face at `centre` (fractions of the frame), `width` the face's
    width as a fraction of the frame width; `faces` draws (centre, width) pairs instead (several people);
    width 0 draws none (an empty room)."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([150 + 40 * xx / w, 160 + 30 * yy / h, np.full((h, w), 170.0)], -1)  # a plain wall
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    people = list(faces) or ([(centre, width)] if width > 0 else [])
    for (fx, fy), fwidth in people:
        _draw_face(d, fx * w, fy * h, fwidth * w)
    blur = max((fw for _, fw in people), default=0.3) * w / 120
    img = img.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, noise, (h, w, 3))
    return _to_bgr(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))


def face_approach(size: tuple[int, int] = (1280, 720), fps: float = 15.0, hold: float = 1.5) -> list[np.ndarray]:
    """A person walking up to the camera, as frames at `fps`: nobody, a small face off to one side, a good-sized
    face off centre, then a centred face (the last frame: show it with loop=False and it stays).
    FaceGuide hints along the way: look_at_camera, closer, centre, hold_still, then capture."""
    n = max(1, int(hold * fps))
    steps = [face_frame(size, width=0, seed=1), face_frame(size, centre=(0.3, 0.5), width=0.12, seed=2),
             face_frame(size, centre=(0.28, 0.5), width=0.28, seed=3), face_frame(size, width=0.28, seed=4)]
    return [f for f in steps[:-1] for _ in range(n)] + [steps[-1]]


class PictureTwin:
    """A photo camera twin: shows one colour frame (or a looped list) until told otherwise.

    `show(frames)` changes what is in front of it; `break_after(n)` makes it fail after n more reads (a camera
    unplugged mid-capture): then read() gives None, capture_still() raises CameraError, status is NO_DEVICE.
    Reads are paced at `fps` like a real camera (a feed thread reading it does not spin); pace=False for tests.
    """

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray | None = None, fps: float = 15.0,
                 pace: bool = True):
        self._lock = threading.Lock()
        self._frames: list[np.ndarray] = []
        self._i = 0
        self._left: int | None = None
        self._next = 0.0
        self.fps, self.pace = fps, pace
        self.reads = 0
        self._loop = True
        self.show(frames if frames is not None else face_frame())

    def show(self, frames: Sequence[np.ndarray] | np.ndarray, loop: bool = True) -> None:
        """What the camera sees from now on: one frame, or frames in turn (looped, or holding the last)."""
        with self._lock:
            self._frames = [frames] if isinstance(frames, np.ndarray) else list(frames)
            self._i = 0
            self._loop = loop

    def break_after(self, n: int | None) -> None:
        with self._lock:
            self._left = n

    def status(self) -> DeviceStatus:
        return DeviceStatus.NO_DEVICE if self._left == 0 else DeviceStatus.ONLINE

    def _next_frame(self) -> np.ndarray | None:
        if self.pace:
            wait = self._next - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # paced like a real camera
            self._next = time.monotonic() + 1.0 / self.fps
        with self._lock:
            if self._left is not None:
                if self._left <= 0:
                    return None
                self._left -= 1
            if not self._frames:
                return None
            i = self._i % len(self._frames) if self._loop else min(self._i, len(self._frames) - 1)
            frame = self._frames[i]
            self._i += 1
            self.reads += 1
            return frame

    def read_colour(self) -> np.ndarray | None:
        return self._next_frame()

    def read(self) -> np.ndarray | None:
        frame = self._next_frame()
        return None if frame is None else to_grey(frame)

    def capture_still(self) -> np.ndarray:
        frame = self._next_frame()
        if frame is None:
            raise CameraError("no frame from the camera")
        return frame.copy()

    def close(self) -> None:
        self.break_after(0)
