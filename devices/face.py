"""Framing one face for a photo (待遇资格认证) with OpenCV's bundled Haar cascade: no model download.

`FaceGuide.feed(frame, now)` looks at one frame and answers what the person should do next: one of HINTS, or
"capture" when exactly one face is centred, big enough, not too big, and has held still for `steady_frames`
frames; the frame that earned "capture" is kept in `guide.photo`. The kiosk decides nothing about the person:
it only frames the picture and sends it.

`HintThrottle` keeps the voice calm: a hint is said only when it differs from the last one said, and at most
once every `interval` seconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from devices.camera import to_grey

LOOK = "look_at_camera"  # no face
ONE_FACE = "one_face_only"  # more than one
CLOSER = "closer"  # too small
FARTHER = "farther"  # too big
CENTRE = "centre"  # off centre
HOLD_STILL = "hold_still"  # right place, still moving
CAPTURE = "capture"
HINTS = (LOOK, ONE_FACE, CLOSER, FARTHER, CENTRE, HOLD_STILL)

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Face:
    """A face box in frame pixels."""

    x: int
    y: int
    w: int
    h: int

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


class FaceDetector:
    """Haar frontal-face detection on a frame scaled to `work_width` (the cascade does not need more pixels
    to find a face that fills a quarter of the frame, and a small frame keeps a 2-core terminal responsive).
    One detector per thread: OpenCV's classifier object is not meant to be shared across threads."""

    def __init__(self, work_width: int = 480, min_face: float = 0.08, min_neighbors: int = 5):
        import cv2  # opencv-python-headless: its wheel ships the cascades

        self._cv2 = cv2
        path = cv2.data.haarcascades + CASCADE  # pyright: ignore[reportAttributeAccessIssue]  (missing from the stubs)
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV cascade {CASCADE} did not load")
        self.work_width = work_width
        self.min_face = min_face  # smaller faces are not looked for: a face that small gets "closer" anyway
        self.min_neighbors = min_neighbors

    def detect(self, frame: np.ndarray) -> list[Face]:
        cv2 = self._cv2
        grey = to_grey(frame)
        h, w = grey.shape[:2]
        s = min(1.0, self.work_width / w)
        small = cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1.0 else grey
        small = cv2.equalizeHist(small)  # a dim village room or a window behind the person
        side = max(24, int(small.shape[1] * self.min_face))
        found = self._cascade.detectMultiScale(
            small, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        return [Face(int(x / s), int(y / s), int(fw / s), int(fh / s)) for (x, y, fw, fh) in found]


class FaceGuide:
    """One frame in, one instruction out. Thresholds are fractions of the frame width.

    centre_tol: the face centre within this fraction of the frame width (and height) from the frame centre;
    min_width / max_width: the face box width as a fraction of the frame width; max_height: the box height as a
    fraction of the frame height (in a wide frame a face gets too tall long before it gets too wide);
    steady_frames / steady_tol: the centre moved less than steady_tol × frame width over that many frames.
    """

    def __init__(
        self,
        detector: FaceDetector | None = None,
        *,
        centre_tol: float = 0.15,
        min_width: float = 0.25,
        max_width: float = 0.6,
        max_height: float = 0.8,
        steady_frames: int = 5,
        steady_tol: float = 0.03,
    ):
        self.detector = detector or FaceDetector()
        self.centre_tol = centre_tol
        self.min_width = min_width
        self.max_width = max_width
        self.max_height = max_height
        self.steady_frames = max(1, steady_frames)
        self.steady_tol = steady_tol
        self._track: deque[tuple[float, float]] = deque(maxlen=self.steady_frames)
        self.photo: np.ndarray | None = None  # the frame that earned "capture"
        self.faces: list[Face] = []  # of the last frame, for a drawn guide box

    def reset(self) -> None:
        self._track.clear()
        self.photo = None

    def feed(self, frame: np.ndarray, now: float = 0.0) -> str:
        """What to tell the person about this frame: a hint from HINTS, or "capture"."""
        faces = self.detector.detect(frame)
        self.faces = faces
        hint = self.judge(faces, frame.shape[1], frame.shape[0])
        if hint != HOLD_STILL:
            self._track.clear()
            return hint
        cx, cy = faces[0].centre
        self._track.append((cx, cy))
        if len(self._track) < self.steady_frames:
            return HOLD_STILL
        xs = [p[0] for p in self._track]
        ys = [p[1] for p in self._track]
        if max(max(xs) - min(xs), max(ys) - min(ys)) > self.steady_tol * frame.shape[1]:
            self._track.popleft()  # keep the newest frames: steadiness counts from when the person stopped
            return HOLD_STILL
        self.photo = frame
        self._track.clear()
        return CAPTURE

    def judge(self, faces: list[Face], width: int, height: int) -> str:
        """The hint for one frame's faces, before steadiness: HOLD_STILL means "right place"."""
        if not faces:
            return LOOK
        if len(faces) > 1:
            return ONE_FACE
        f = faces[0]
        if f.w < self.min_width * width:
            return CLOSER
        if f.w > self.max_width * width or f.h > self.max_height * height:
            return FARTHER
        cx, cy = f.centre
        if abs(cx - width / 2) > self.centre_tol * width or abs(cy - height / 2) > self.centre_tol * height:
            return CENTRE
        return HOLD_STILL


class HintThrottle:
    """Say a hint only when it changes, and at most once every `interval` seconds.

    A hint that changes again within the interval waits; if it still holds when the interval is over, it is
    said then (offer() is called with every frame, so "then" is the next frame after the interval).
    """

    def __init__(self, interval: float = 3.0):
        self.interval = interval
        self._said: str | None = None
        self._at: float | None = None

    def offer(self, hint: str, now: float) -> str | None:
        if hint == self._said:
            return None
        if self._at is not None and now - self._at < self.interval:
            return None
        self._said, self._at = hint, now
        return hint

    def reset(self) -> None:
        self._said = self._at = None
