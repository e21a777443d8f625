"""Face framing: OpenCV's bundled Haar cascade on the twin's synthetic face; the guide's hints; the throttle."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.face import (
    CAPTURE,
    CENTRE,
    CLOSER,
    FARTHER,
    HINTS,
    HOLD_STILL,
    LOOK,
    ONE_FACE,
    Face,
    FaceDetector,
    FaceGuide,
    HintThrottle,
)
from sim.camera_twin import document_frame, face_frame, noise_frame

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (640, 480), (720, 1280)])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_twin_face_is_found_once(detector, size, seed):
    faces = detector.detect(face_frame(size, width=0.3 if size[0] > size[1] else 0.45, seed=seed))
    assert len(faces) == 1
    cx, cy = faces[0].centre
    assert abs(cx - size[0] / 2) < 0.05 * size[0] and abs(cy - size[1] / 2) < 0.1 * size[1]


def test_grey_frames_work_too(detector):
    from devices.camera import to_grey

    assert len(detector.detect(to_grey(face_frame()))) == 1


@pytest.mark.parametrize("frame", [face_frame(width=0), document_frame(), noise_frame(),
                                   np.full((720, 1280, 3), 200, np.uint8)], ids=["wall", "document", "noise", "flat"])
def test_no_face_where_there_is_none(detector, frame):
    assert detector.detect(frame) == []


def test_two_people_are_two_faces(detector):
    frame = face_frame(faces=[((0.28, 0.5), 0.25), ((0.72, 0.5), 0.25)])
    assert len(detector.detect(frame)) == 2


# ------------------------------------------------------------------ the guide on real detections


@pytest.mark.parametrize(
    ("kw", "hint"),
    [
        (dict(width=0), LOOK),
        (dict(faces=[((0.28, 0.5), 0.25), ((0.72, 0.5), 0.25)]), ONE_FACE),
        (dict(width=0.12), CLOSER),
        (dict(width=0.4), FARTHER),
        (dict(centre=(0.25, 0.5), width=0.28), CENTRE),
        (dict(centre=(0.5, 0.5), width=0.28), HOLD_STILL),
    ],
)
def test_first_frame_hint(detector, kw, hint):
    guide = FaceGuide(detector)
    assert guide.feed(face_frame(**kw), 0.0) == hint


def test_a_steady_centred_face_is_captured_after_k_frames(detector):
    guide = FaceGuide(detector, steady_frames=4)
    frames = [face_frame(centre=(0.5 + 0.002 * i, 0.5), width=0.28, seed=i) for i in range(5)]
    got = [guide.feed(f, i * 0.1) for i, f in enumerate(frames)]
    assert got[:3] == [HOLD_STILL] * 3 and got[3] == CAPTURE
    assert guide.photo is frames[3]


def test_a_moving_face_is_never_captured(detector):
    guide = FaceGuide(detector, steady_frames=4)
    xs = [0.42, 0.5, 0.58, 0.5, 0.42, 0.5, 0.58, 0.5]  # swaying by 8 % of the frame each frame
    got = [guide.feed(face_frame(centre=(x, 0.5), width=0.28), i * 0.1) for i, x in enumerate(xs)]
    assert CAPTURE not in got and set(got) == {HOLD_STILL}
    assert guide.photo is None


def test_leaving_the_frame_restarts_the_count(detector):
    guide = FaceGuide(detector, steady_frames=3)
    good, empty = face_frame(width=0.28), face_frame(width=0)
    assert [guide.feed(f) for f in (good, good, empty, good, good)] == [HOLD_STILL, HOLD_STILL, LOOK,
                                                                       HOLD_STILL, HOLD_STILL]
    assert guide.feed(good) == CAPTURE


# ------------------------------------------------------------------ the guide's rules, on face boxes


class Boxes:
    """A detector that returns given boxes: the rules without the cascade."""

    def __init__(self):
        self.faces: list[Face] = []

    def detect(self, frame):
        return self.faces


W, H = 1000, 600
box = st.builds(Face, st.integers(-50, W), st.integers(-50, H), st.integers(1, W), st.integers(1, H))


@settings(max_examples=300, deadline=None)
@given(st.lists(box, max_size=4))
def test_rules_follow_the_thresholds(faces):
    guide = FaceGuide(Boxes(), centre_tol=0.15, min_width=0.25, max_width=0.6, max_height=0.8)  # type: ignore[arg-type]
    hint = guide.judge(faces, W, H)
    assert hint in HINTS
    if not faces:
        assert hint == LOOK
    elif len(faces) > 1:
        assert hint == ONE_FACE
    else:
        f = faces[0]
        cx, cy = f.centre
        ok_size = 0.25 * W <= f.w <= 0.6 * W and f.h <= 0.8 * H
        ok_place = abs(cx - W / 2) <= 0.15 * W and abs(cy - H / 2) <= 0.15 * H
        assert (hint == HOLD_STILL) == (ok_size and ok_place)
        if f.w < 0.25 * W:
            assert hint == CLOSER


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-30, 30), st.floats(-30, 30)), min_size=1, max_size=30))
def test_capture_only_after_k_steady_frames(moves):
    det = Boxes()
    guide = FaceGuide(det, steady_frames=5, steady_tol=0.03)  # type: ignore[arg-type]
    frame = np.zeros((H, W), np.uint8)
    centres = []
    for dx, dy in moves:
        x, y = 500 + dx, 300 + dy
        det.faces = [Face(int(x - 150), int(y - 150), 300, 300)]
        centres.append(det.faces[0].centre)
        if guide.feed(frame) == CAPTURE:
            last = centres[-5:]
            assert len(last) == 5
            spread = max(max(c[0] for c in last) - min(c[0] for c in last),
                         max(c[1] for c in last) - min(c[1] for c in last))
            assert spread <= 0.03 * W
            assert guide.photo is frame
            return
    # never captured: then no 5 consecutive centres were steady
    for i in range(len(centres) - 4):
        win = centres[i:i + 5]
        spread = max(max(c[0] for c in win) - min(c[0] for c in win), max(c[1] for c in win) - min(c[1] for c in win))
        assert spread > 0.03 * W


# ------------------------------------------------------------------ the throttle


def test_throttle_says_changes_at_most_every_interval():
    t = HintThrottle(3.0)
    assert t.offer(LOOK, 0.0) == LOOK
    assert t.offer(LOOK, 0.5) is None  # same: never repeated
    assert t.offer(CLOSER, 1.0) is None  # changed too soon: waits
    assert t.offer(CLOSER, 3.1) == CLOSER  # still so after the interval: said now
    assert t.offer(CENTRE, 3.2) is None
    assert t.offer(HOLD_STILL, 4.0) is None
    assert t.offer(CLOSER, 5.0) is None  # back to what was said last: nothing to say
    assert t.offer(HOLD_STILL, 6.2) == HOLD_STILL


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(HINTS), st.floats(0, 2)), max_size=60))
def test_throttle_never_chatters(stream):
    t = HintThrottle(3.0)
    now, said = 0.0, []
    for hint, dt in stream:
        now += dt
        got = t.offer(hint, now)
        if got is not None:
            assert got == hint
            said.append((got, now))
    for (a, ta), (b, tb) in pairwise(said):
        assert a != b and tb - ta >= 3.0
    if stream:
        assert said and said[0] == (stream[0][0], stream[0][1])  # the first hint is said at once
