"""The capture glue and the session together: what kiosk.capture posts is what the session acts on, as the
runtime would carry it (FaceWatch on → a watcher; CaptureStill → capture_document; every value in Result)."""

from __future__ import annotations

import hashlib

import pytest

from devices.face import FaceGuide
from kiosk import session as S
from kiosk import view
from kiosk.capture import FaceWatcher, capture_document
from sim.camera_twin import PictureTwin, document_frame, face_frame
from tests.unit.test_session_filings import Driver

pytestmark = pytest.mark.timeout(60)


class Runner:
    """The runtime's part, by hand: a FaceWatch(on) makes a watcher, CaptureStill takes a still."""

    def __init__(self, d: Driver, camera) -> None:
        self.d, self.camera = d, camera
        self.posted: list = []
        self.watcher: FaceWatcher | None = None
        self.seen = 0

    def run_effects(self) -> None:
        for eff in self.d.effects[self.seen:]:
            if isinstance(eff, S.FaceWatch):
                self.watcher = FaceWatcher(self.camera, self.posted.append, eff.sid, eff.field,
                                           guide=FaceGuide(steady_frames=2)) if eff.on else None
            elif isinstance(eff, S.CaptureStill):
                self.posted.append(S.Result(eff.sid, capture_document(self.camera, eff.field)))
        self.seen = len(self.d.effects)

    def deliver(self) -> None:
        while self.posted:
            self.d.send(self.posted.pop(0))
        self.run_effects()


def test_a_face_is_guided_captured_and_kept_as_a_digest():
    d = Driver().start("qualification_certification", strong=False)
    r = Runner(d, PictureTwin())
    r.run_effects()
    assert r.watcher is not None and r.watcher.field == "face"
    frames = [face_frame(width=0.12)] * 2 + [face_frame(width=0.28)] * 4
    for i, frame in enumerate(frames):
        if r.watcher is None or r.watcher.step(frame, 4.0 * i):
            break
    r.deliver()
    assert S.capture_phase(d.state) == "review" and d.state.face_on is None and r.watcher is None
    keep = d.effects_of(S.KeepAttachment)[-1]
    assert keep.digest == d.state.draft == hashlib.sha256(keep.data).hexdigest()
    assert "face.hint.closer" in [e.msgid for e in d.effects_of(S.Speak)]
    d.send(S.Next())
    assert d.state.screen is S.Screen.REVIEW and dict(d.state.answers)["face"] == keep.digest


def test_a_camera_unplugged_during_the_face_photo_shows_the_failed_phase_and_retake_watches_again():
    d = Driver().start("qualification_certification", strong=False)
    cam = PictureTwin(face_frame(width=0))
    r = Runner(d, cam)
    r.run_effects()
    assert r.watcher is not None
    r.watcher._camera_lost()  # what its thread does after give_up seconds without a frame
    r.deliver()
    v = view.build(d.state, d.clock.t)
    assert v.extra["phase"] == "failed" and r.watcher is None and d.state.face_on is None
    assert [b.label for b in v.buttons] == ["重拍", "返回"]
    d.send(S.Retake())
    r.run_effects()
    assert r.watcher is not None and d.state.face_on == "face"
    assert view.build(d.state, d.clock.t).extra["phase"] == "live"


def test_document_still_through_to_the_review_and_a_broken_camera_to_the_failed_phase():
    d = Driver().start("startup_loan")
    d.type_digits("5")
    cam = PictureTwin(document_frame((1920, 1080)))
    r = Runner(d, cam)
    d.send(S.CaptureNow())
    r.run_effects()
    r.deliver()
    v = view.build(d.state, d.clock.t)
    assert v.extra["phase"] == "review" and v.extra["digest"] == d.state.draft
    d.send(S.Retake())
    cam.break_after(0)
    d.send(S.CaptureNow())
    r.run_effects()
    r.deliver()
    assert view.build(d.state, d.clock.t).extra["phase"] == "failed"
    assert [e.msgid for e in d.effects_of(S.Speak)][-1] == "capture.failed.title"
