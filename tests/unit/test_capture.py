"""Capture glue: a document still becomes Captured, a face is framed with throttled hints and captured once,
a camera that fails mid-capture becomes CaptureFailed and a stopped feed.

Captured, FaceHint and CaptureFailed are the session's own results (kiosk.capture re-exports them)."""

from __future__ import annotations

import io
import queue
import threading

import numpy as np
import pytest
from PIL import Image

from devices.camera import CameraError
from devices.face import FaceGuide
from kiosk import session as S
from kiosk.capture import (
    JPEG,
    Captured,
    CaptureFailed,
    DocumentPreview,
    FaceHint,
    FaceWatcher,
    LiveFeed,
    capture_document,
)
from sim.camera_twin import FileFrameSource, PictureTwin, document_frame, face_approach, face_frame

pytestmark = pytest.mark.timeout(60)

GOOD = face_frame(width=0.28)
EMPTY = face_frame(width=0)
SMALL = face_frame(width=0.12)


def jpeg_size(data: bytes) -> tuple[int, int]:
    im = Image.open(io.BytesIO(data))
    im.load()
    assert im.format == "JPEG"
    return im.size


class Ticks:
    """A clock that moves one second per reading: 'seconds without a frame' without waiting for them."""

    def __init__(self) -> None:
        self.t = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.t += 1.0
            return self.t


# ------------------------------------------------------------------ the document camera


def test_document_still_is_a_fitted_jpeg():
    cam = PictureTwin(document_frame((1920, 1080)))
    got = capture_document(cam, "household_book")
    assert isinstance(got, Captured)
    assert got.field == "household_book" and got.media_type == JPEG == "image/jpeg"
    assert len(got.data) <= 307_200 and jpeg_size(got.data) == (1600, 900)
    assert "\\xff" not in repr(got)  # the picture's bytes never reach a log line through repr


def test_a_grey_only_camera_still_gives_a_photo():
    src = FileFrameSource.from_arrays([np.full((480, 640), 120, np.uint8)], pace=False)
    got = capture_document(src, "doc")
    assert isinstance(got, Captured) and jpeg_size(got.data) == (640, 480)


def test_a_camera_that_is_gone_is_a_capture_failed():
    cam = PictureTwin(document_frame())
    cam.break_after(0)
    assert capture_document(cam, "doc") == CaptureFailed("doc", "camera")
    assert capture_document(None, "doc") == CaptureFailed("doc", "camera")


def test_a_driver_exception_is_a_capture_failed_not_a_crash():
    class Broken:
        def capture_still(self):
            raise OSError("VIDIOC_DQBUF: No such device")

    class Raising:
        def capture_still(self):
            raise CameraError("no frame")

    assert capture_document(Broken(), "doc") == CaptureFailed("doc", "camera")
    assert capture_document(Raising(), "doc") == CaptureFailed("doc", "camera")


def test_an_unencodable_frame_is_a_capture_failed():
    class Odd:
        def capture_still(self):
            return np.zeros((10, 10, 2), np.uint8)

    assert capture_document(Odd(), "doc") == CaptureFailed("doc", "encode")


# ------------------------------------------------------------------ the face watcher, step by step


def values(events: list) -> list:
    assert all(isinstance(e, S.Result) and e.sid == 7 for e in events)
    return [e.value for e in events]


def test_face_watcher_hints_then_captures_once():
    posted: list = []
    w = FaceWatcher(PictureTwin(), posted.append, 7, "face", guide=FaceGuide(steady_frames=3))
    assert not w.step(EMPTY, 0.0)
    assert not w.step(SMALL, 1.0)  # changed within 3 s: not said yet
    assert not w.step(SMALL, 3.5)  # still so after 3 s: said now
    assert not w.step(SMALL, 4.0)  # same again: not repeated
    assert values(posted) == [FaceHint("look_at_camera"), FaceHint("closer")]
    posted.clear()
    assert not w.step(GOOD, 5.0)
    assert not w.step(GOOD, 5.1)
    assert w.step(GOOD, 5.2)  # third steady frame: the photo
    got = values(posted)
    assert got[-1] == Captured("face", got[-1].data, "image/jpeg")
    assert jpeg_size(got[-1].data) == (1280, 720)
    assert all(isinstance(v, FaceHint) for v in got[:-1])  # hold_still may have been said on the way
    posted.clear()
    assert w.step(GOOD, 9.0) and posted == []  # one capture, then silence
    assert w.guide.photo is None  # the guide keeps no picture of the person


def test_face_watcher_posts_nothing_but_hints_until_the_guide_says_capture():
    posted: list = []
    w = FaceWatcher(PictureTwin(), posted.append, 7, "face")
    for i, frame in enumerate([EMPTY, SMALL, face_frame(centre=(0.25, 0.5), width=0.28)] * 4):
        w.step(frame, i * 1.1)
    assert posted and all(isinstance(v, FaceHint) for v in values(posted))


def test_a_person_walking_up_is_guided_then_captured():
    posted: list = []
    cam = PictureTwin(pace=False)
    cam.show(face_approach(fps=4, hold=4.0), loop=False)  # 4 s each: every hint outlasts the 3 s throttle
    w = FaceWatcher(cam, posted.append, 7, "face")
    now = 0.0
    while not w.step(cam.read_colour(), now):
        now += 0.25
        assert now < 60
    got = values(posted)
    assert [v.hint for v in got[:-1]] == ["look_at_camera", "closer", "centre", "hold_still"][:len(got) - 1]
    assert [v.hint for v in got[:3]] == ["look_at_camera", "closer", "centre"]
    assert isinstance(got[-1], Captured)


# ------------------------------------------------------------------ the face watcher on its thread


def test_face_watcher_thread_captures_from_the_camera():
    q: queue.Queue = queue.Queue()
    cam = PictureTwin(GOOD)
    w = FaceWatcher(cam, q.put, 7, "face")
    w.start()
    try:
        got = [q.get(timeout=20).value]
        while not isinstance(got[-1], Captured):
            got.append(q.get(timeout=20).value)
        assert got[:-1] in ([], [FaceHint("hold_still")])
        assert got[-1].field == "face"
        assert w.latest() is not None  # the preview had frames
    finally:
        w.stop()
    assert w.latest() is None and not w.running


def test_camera_failing_mid_capture_posts_capture_failed_and_stops():
    q: queue.Queue = queue.Queue()
    cam = PictureTwin(EMPTY)
    cam.break_after(3)  # three frames, then unplugged
    w = FaceWatcher(cam, q.put, 7, "face", clock=Ticks(), give_up=3.0)
    w.start()
    try:
        got = []
        while True:
            ev = q.get(timeout=20)
            got.append(ev.value)
            if not isinstance(ev.value, FaceHint):
                break
        assert got[-1] == CaptureFailed("face", "camera")
        assert got[:-1] == [FaceHint("look_at_camera")]
        assert w._thread is not None
        w._thread.join(5)
        assert not w._thread.is_alive()
    finally:
        w.stop()
    assert q.empty()


def test_live_feed_keeps_the_newest_frame_and_forgets_it_on_stop():
    cam = PictureTwin([document_frame((640, 360), seed=i) for i in range(3)])
    seen = threading.Event()

    class Feed(LiveFeed):
        def on_frame(self, frame, now):
            if self.frames >= 5:
                seen.set()
            return False

    feed = Feed(cam)
    feed.start()
    try:
        assert seen.wait(20)
        assert feed.latest() is not None and feed.latest().shape == (360, 640, 3)
    finally:
        feed.stop()
    assert feed.latest() is None


def test_live_feed_reports_a_lost_camera_once():
    lost: list = []
    cam = PictureTwin(EMPTY)
    cam.break_after(0)
    done = threading.Event()
    feed = LiveFeed(cam, clock=Ticks(), give_up=2.0, on_lost=lambda: (lost.append(1), done.set()))
    feed.start()
    assert done.wait(20)
    feed.stop()
    assert lost == [1]


def test_document_preview_unplugged_posts_capture_failed_once():
    q: queue.Queue = queue.Queue()
    cam = PictureTwin(document_frame((640, 360)))
    cam.break_after(2)
    feed = DocumentPreview(cam, q.put, 7, "doc", clock=Ticks(), give_up=3.0)
    feed.start()
    try:
        ev = q.get(timeout=20)
        assert ev == S.Result(7, CaptureFailed("doc", "camera"))
        assert feed._thread is not None
        feed._thread.join(5)
        assert not feed._thread.is_alive() and feed.frames == 2
    finally:
        feed.stop()
    assert q.empty()


# ------------------------------------------------------------------ words for every hint and button


def test_every_hint_and_screen_text_has_words_in_both_locales():
    from devices.face import HINTS
    from kiosk.i18n import catalog, tr

    ids = [f"face.hint.{h}" for h in HINTS] + [
        f"capture.{k}.{p}" for k in ("document", "review", "face", "failed") for p in ("title", "body")] + [
        "capture.opening", "signature.title", "signature.body", "signature.placeholder", "signature.empty"]
    for msgid in ids:
        assert msgid in catalog("zh_CN") and msgid in catalog("en"), msgid
        assert tr("en", msgid) != tr("zh_CN", msgid), msgid
    assert tr("zh_CN", "face.hint.look_at_camera") == "请看摄像头"
    assert tr("zh_CN", "face.hint.closer") == "请靠近一点"
    assert [tr("zh_CN", f"capture.btn.{b}") for b in ("shoot", "retake", "use")] == ["拍照", "重拍", "使用这张"]
    assert [tr("zh_CN", f"signature.btn.{b}") for b in ("clear", "done")] == ["重写", "完成"]
    assert tr("xx", "signature.btn.done") == "完成"  # an unknown locale falls back to Chinese


def test_the_glue_makes_the_sessions_own_results():
    import kiosk.capture as C

    for name in ("Captured", "FaceHint", "CaptureFailed", "Attach", "CaptureNow", "Retake"):
        assert getattr(C, name) is getattr(S, name), name
    assert capture_document(None, "doc") == S.CaptureFailed("doc", "camera")


# ------------------------------------------------------------------ the V4L2 camera's still capture


class FakeCap:
    def __init__(self, frames):
        self.frames = list(frames)
        self.grabs = 0

    def grab(self):
        self.grabs += 1
        return True

    def read(self):
        f = self.frames.pop(0) if self.frames else None
        return (f is not None), f

    def release(self):
        pass


def test_v4l2_still_skips_the_buffered_frame_and_fails_cleanly():
    from devices.base import DeviceStatus
    from devices.camera import V4l2Camera

    cam = V4l2Camera("/dev/video99")
    with pytest.raises(CameraError):
        cam.capture_still()  # never opened
    frame = document_frame((320, 180))
    cap = FakeCap([frame, None])
    cam._cap, cam._status = cap, DeviceStatus.ONLINE
    assert cam.capture_still() is frame and cap.grabs == 1
    with pytest.raises(CameraError):
        cam.capture_still()  # unplugged: the driver gives nothing
    assert cam.status() is DeviceStatus.NO_DEVICE
    assert capture_document(cam, "doc") == CaptureFailed("doc", "camera")


def test_v4l2_read_gives_grey_and_read_colour_gives_bgr():
    from devices.base import DeviceStatus
    from devices.camera import V4l2Camera

    frame = document_frame((320, 180))
    cam = V4l2Camera("/dev/video99")
    cam._cap, cam._status = FakeCap([frame, frame]), DeviceStatus.ONLINE
    assert cam.read_colour().shape == (180, 320, 3)
    grey = cam.read()
    assert grey is not None and grey.shape == (180, 320)
    cam.close()
    assert cam.read() is None
