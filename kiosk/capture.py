"""Runtime glue for the document camera and the face photo: what the runtime calls for CaptureStill / FaceWatch.

- `capture_document(camera, field)` takes one still and returns Captured(field, jpeg, "image/jpeg"), or
  CaptureFailed(field, reason) when the camera gives nothing; the runtime runs it on a worker and posts the
  value inside Result(sid, value), like every device result.
- `LiveFeed(camera)` reads frames on a thread of its own while a capture screen is up and keeps the newest for
  the preview (`latest()`); nothing is read while no capture screen is shown. `DocumentPreview` is one that
  posts Result(sid, CaptureFailed(field, "camera")) when the camera stops giving frames.
- `FaceWatcher(camera, post, sid, field)` is a LiveFeed that also feeds frames to a FaceGuide on that thread
  (the UI thread never waits for the detector), posts Result(sid, FaceHint(hint)) when the guidance changes
  (rate-limited: the voice must not chatter), and Result(sid, Captured(...)) once, when the guide says capture.
  A camera that stops giving frames posts Result(sid, CaptureFailed(field, "camera")) and stops.

Nothing here decides anything about the person: it frames a picture and hands the bytes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# the session's own events and results: this module only makes them (re-exported for the screens)
from kiosk.session import Attach, Captured, CaptureFailed, CaptureNow, FaceHint, Result, Retake

__all__ = [
    "JPEG", "PNG", "Attach", "Captured", "CaptureFailed", "CaptureNow", "FaceHint", "Retake", "DocumentPreview",
    "FaceWatcher", "LiveFeed", "capture_document", "still_of",
]

log = logging.getLogger(__name__)

JPEG = "image/jpeg"
PNG = "image/png"


def _result(sid: int, value: object) -> object:
    return Result(sid, value)


def still_of(camera):
    """One fresh colour frame: capture_still() where the camera has it, else the next read()."""
    from devices.camera import CameraError

    grab = getattr(camera, "capture_still", None)
    frame = grab() if grab is not None else camera.read()
    if frame is None:
        raise CameraError("no frame from the camera")
    return frame


def capture_document(camera, field: str) -> object:
    """Take one still and make it an attachment (JPEG ≤ 1600 px, ≤ 300 KB). Never raises."""
    from devices.camera import CameraError
    from devices.photo import PhotoError, fit_jpeg

    if camera is None:
        return CaptureFailed(field, "camera")
    try:
        frame = still_of(camera)
    except CameraError as e:
        log.warning("document capture: %s", e)
        return CaptureFailed(field, "camera")
    except Exception as e:  # a driver bug is a failed capture, not a stuck screen
        log.warning("document capture failed: %s", type(e).__name__)
        return CaptureFailed(field, "camera")
    try:
        return Captured(field, fit_jpeg(frame), JPEG)
    except (PhotoError, OSError) as e:
        log.warning("document capture: cannot encode (%s)", type(e).__name__)
        return CaptureFailed(field, "encode")


def _read(camera):
    read = getattr(camera, "read_colour", None) or camera.read
    return read()


class LiveFeed:
    """Reads the camera on its own thread; `latest()` is the newest frame for the preview (BGR or grey).

    `give_up` seconds without a frame means the camera is gone: on_lost() is called once and the feed stops.
    """

    def __init__(self, camera, *, give_up: float = 3.0, clock: Callable[[], float] = time.monotonic,
                 on_lost: Callable[[], None] | None = None):
        self.camera = camera
        self.give_up = give_up
        self.clock = clock
        self.on_lost = on_lost
        self._latest = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0

    def latest(self):
        return self._latest

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="camera-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=2.0)
        self._latest = None  # nothing of the person stays in memory for the next screen

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def _loop(self) -> None:
        last_frame_at = self.clock()
        while not self._stop.is_set():
            try:
                frame = _read(self.camera)
            except Exception as e:  # unplugged mid-read
                log.info("camera read failed: %s", type(e).__name__)
                frame = None
            if self._stop.is_set():
                break
            now = self.clock()
            if frame is None:
                if now - last_frame_at > self.give_up:
                    log.warning("camera gave no frame for %.1f s: capture stopped", self.give_up)
                    self._lost()
                    return
                self._stop.wait(0.05)
                continue
            last_frame_at = now
            self._latest = frame
            self.frames += 1
            try:
                if self.on_frame(frame, now):
                    return
            except Exception:  # the feed never dies of a frame it could not judge
                log.exception("camera frame handler failed")

    def _lost(self) -> None:
        self._stop.set()
        if self.on_lost is not None:
            self.on_lost()

    def on_frame(self, frame, now: float) -> bool:
        """A subclass's work on each frame; True ends the feed."""
        return False


class DocumentPreview(LiveFeed):
    """The document camera's live preview; a camera that stops giving frames posts
    Result(sid, CaptureFailed(field, "camera")) once and the preview stops."""

    def __init__(self, camera, post: Callable[[object], None], sid: int, field: str, *,
                 clock: Callable[[], float] = time.monotonic, give_up: float = 3.0):
        super().__init__(camera, give_up=give_up, clock=clock, on_lost=self._camera_lost)
        self.post, self.sid, self.field = post, sid, field

    def _camera_lost(self) -> None:
        self.post(_result(self.sid, CaptureFailed(self.field, "camera")))


class FaceWatcher(LiveFeed):
    """Frames a face: hints while it is not right, one Captured when it is, then stops.

    The hint shown and said is rate-limited by a HintThrottle (a change at most every `hint_interval` s).
    Tests drive `step(frame, now)` directly; the runtime calls start() / stop().
    """

    def __init__(self, camera, post: Callable[[object], None], sid: int, field: str, *, guide=None,
                 hint_interval: float = 3.0, clock: Callable[[], float] = time.monotonic, give_up: float = 3.0,
                 max_fps: float = 12.0):
        super().__init__(camera, give_up=give_up, clock=clock, on_lost=self._camera_lost)
        self.min_gap = 1.0 / max_fps if max_fps > 0 else 0.0
        self._judged_at: float | None = None
        from devices.face import FaceGuide, HintThrottle

        self.post = post
        self.sid = sid
        self.field = field
        self.guide = guide if guide is not None else FaceGuide()
        self.throttle = HintThrottle(hint_interval)
        self.done = False
        self.judged = 0
        self.judge_seconds = 0.0

    def on_frame(self, frame, now: float) -> bool:
        # every frame goes to the preview; only max_fps of them to the detector: it is ~20 ms of CPU a frame,
        # and the UI of a 2-core terminal needs its share
        if self._judged_at is not None and now - self._judged_at < self.min_gap:
            return False
        self._judged_at = now
        return self.step(frame, now)

    def step(self, frame, now: float) -> bool:
        """Judge one frame; True when the photo has been taken (nothing more is posted after it)."""
        from devices.face import CAPTURE
        from devices.photo import PhotoError, fit_jpeg

        if self.done:
            return True
        t0 = time.perf_counter()
        verdict = self.guide.feed(frame, now)
        self.judge_seconds += time.perf_counter() - t0
        self.judged += 1
        if verdict != CAPTURE:
            say = self.throttle.offer(verdict, now)
            if say is not None:
                self.post(_result(self.sid, FaceHint(say)))
            return False
        self.done = True
        try:
            value: object = Captured(self.field, fit_jpeg(self.guide.photo), JPEG)
        except (PhotoError, OSError) as e:
            log.warning("face capture: cannot encode (%s)", type(e).__name__)
            value = CaptureFailed(self.field, "encode")
        self.guide.reset()  # the frame is in the JPEG now; the guide keeps no picture of the person
        self.post(_result(self.sid, value))
        return True

    def _camera_lost(self) -> None:
        if not self.done:
            self.done = True
            self.post(_result(self.sid, CaptureFailed(self.field, "camera")))
