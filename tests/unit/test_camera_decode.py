"""QR decoding from camera frames: realistic 1280×720 frames, latest-frame-wins, debounce, twin source."""

from __future__ import annotations

import queue
import threading
import time
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from devices.base import DeviceStatus, ScanRejected
from devices.camera import QrDecoder, V4l2Camera, decode_qr, to_grey
from devices.scanner import CodeScanned, code_event, printable_code
from sim.camera_twin import FileFrameSource, noise_frame, synth_frame

pytestmark = pytest.mark.timeout(60)
TOKEN = "https://si.example.cn/essc?t=7Hq2LmZ9xC"


@pytest.mark.parametrize("seed", range(4))
def test_decodes_a_realistic_frame(seed):
    frame = synth_frame(TOKEN, offset=(200 + 150 * seed, 100 + 60 * seed), blur=1.0 + 0.3 * seed,
                        noise=6 + 3 * seed, seed=seed)
    assert frame.shape == (720, 1280) and frame.dtype == np.uint8
    assert decode_qr(frame) == [TOKEN]


def test_noise_and_blank_frames_hold_no_code():
    assert decode_qr(noise_frame()) == []
    assert decode_qr(np.full((720, 1280), 128, np.uint8)) == []


def test_bgr_frames_are_turned_grey():
    grey = synth_frame(TOKEN, seed=2)
    bgr = np.stack([grey, grey, grey], axis=-1)
    assert np.abs(to_grey(bgr).astype(int) - grey).max() <= 1
    assert decode_qr(to_grey(bgr)) == [TOKEN]


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_debounce_once_per_code_while_in_view():
    events: queue.Queue = queue.Queue()
    clock = FakeClock()
    dec = QrDecoder(events.put, debounce=3.0, clock=clock)
    dec.start()
    try:
        code, other, empty = synth_frame(TOKEN), synth_frame("OTHER-CODE", seed=5), noise_frame()
        for frame, dt in [(code, 0), (code, 1), (code, 1), (empty, 1), (code, 1), (other, 0.5)]:
            clock.t += dt
            dec.submit(frame)
            assert dec.wait_idle()
        # still in view 4 s later: no repeat; out of view > 3 s: shown again → a second event
        clock.t += 3.5
        dec.submit(code)
        assert dec.wait_idle()
        got = []
        while not events.empty():
            got.append(events.get())
        assert [(e.text, e.source) for e in got] == [(TOKEN, "camera"), ("OTHER-CODE", "camera"),
                                                    (TOKEN, "camera")]
    finally:
        dec.stop()


def test_latest_frame_wins_when_decoding_is_slow():
    decoded = []
    gate = threading.Event()

    def slow_decode(grey):
        gate.wait(2)
        decoded.append(int(grey[0, 0]))
        return []

    dec = QrDecoder(lambda e: None, decode=slow_decode)
    dec.start()
    try:
        dec.submit(np.full((4, 4), 0, np.uint8))
        time.sleep(0.1)  # the worker holds frame 0
        for i in range(1, 20):
            dec.submit(np.full((4, 4), i, np.uint8))
        gate.set()
        assert dec.wait_idle()
        assert decoded == [0, 19]
        assert dec.frames_in == 20 and dec.frames_dropped == 18 and dec.frames_decoded == 2
    finally:
        dec.stop()


def test_decoder_survives_a_decode_error():
    calls = []

    def broken(grey):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("driver hiccup")
        return ["X"]

    events: queue.Queue = queue.Queue()
    dec = QrDecoder(events.put, decode=broken)
    dec.start()
    try:
        dec.submit(np.zeros((4, 4), np.uint8))
        assert dec.wait_idle()
        dec.submit(np.zeros((4, 4), np.uint8))
        assert dec.wait_idle()
        assert events.get(timeout=1).text == "X"
    finally:
        dec.stop()


def test_file_frame_source_pipeline(tmp_path):
    paths = []
    for i, frame in enumerate([noise_frame(seed=1), synth_frame(TOKEN, seed=3), noise_frame(seed=2)]):
        paths.append(tmp_path / f"f{i}.png")
        Image.fromarray(frame).save(paths[-1])
    src = FileFrameSource(paths, fps=20, loop=True)
    assert src.status() is DeviceStatus.ONLINE
    events: queue.Queue = queue.Queue()
    dec = QrDecoder(events.put, source=src, debounce=5.0)
    dec.start()
    try:
        assert events.get(timeout=5) == CodeScanned(TOKEN, "camera")
        time.sleep(0.6)  # the loop shows the code again within the debounce window
        assert events.empty()
        assert dec.frames_in >= 8
    finally:
        dec.stop()
        src.close()
    assert src.status() is DeviceStatus.NO_DEVICE and src.read() is None


def test_file_frame_source_pacing_and_end():
    src = FileFrameSource.from_arrays([np.zeros((2, 2), np.uint8)] * 3, fps=50, loop=False)
    t0 = time.monotonic()
    frames = [src.read() for _ in range(4)]
    assert [f is None for f in frames] == [False, False, False, True]
    assert 0.03 <= time.monotonic() - t0 < 0.5


def test_v4l2_camera_without_device_is_no_device_not_an_exception():
    cam = V4l2Camera("/dev/video99")
    assert cam.open() is DeviceStatus.NO_DEVICE
    assert cam.status() is DeviceStatus.NO_DEVICE and cam.detail
    assert cam.read() is None
    cam.close()


# ------------------------------------------------------------------ the printable gate (shared with the scanner)

BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
GOOD_CATEGORIES = ("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No",
                   "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So")


@settings(max_examples=500, deadline=None)
@given(st.text(), st.characters(categories=BAD_CATEGORIES), st.text())
def test_one_unprintable_character_anywhere_rejects_the_code(before, bad, after):
    text = before + bad + after
    assert not printable_code(text)
    assert code_event(text, "camera") == ScanRejected("not_printable", "camera")
    assert code_event(text, "scanner") == ScanRejected("not_printable", "scanner")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(categories=GOOD_CATEGORIES), st.just(" ")), min_size=1))
def test_letters_marks_digits_punctuation_symbols_and_space_pass(text):
    assert printable_code(text)
    assert code_event(text, "camera") == CodeScanned(text, "camera")


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_the_gate_passes_a_code_only_when_every_character_is_printable(text):
    ev = code_event(text, "camera")
    ok = text != "" and all(
        c == " " or unicodedata.category(c) not in (*BAD_CATEGORIES, "Zs") for c in text
    )
    assert isinstance(ev, CodeScanned if ok else ScanRejected)
    if ok:
        assert ev.text == text


@pytest.mark.parametrize(
    "text",
    ["", "\u200b", "A\u202eB", "\ud800", "A\udfffB", "\ue000", "\U0010fffd", "A\x00", "\t", "\u3000"],
)
def test_edge_cases_are_rejected(text):
    assert not printable_code(text)


def test_camera_emits_rejection_for_unprintable_decodes_and_debounces_it():
    events: queue.Queue = queue.Queue()
    clock = FakeClock()
    shown = {"texts": ["A\u200bB"]}
    dec = QrDecoder(events.put, debounce=3.0, clock=clock, decode=lambda grey: shown["texts"])
    dec.start()
    try:
        for dt in (0, 1, 1):  # stays in view: one rejection
            clock.t += dt
            dec.submit(np.zeros((4, 4), np.uint8))
            assert dec.wait_idle()
        shown["texts"] = ["\ue000", "GOOD-1"]
        dec.submit(np.zeros((4, 4), np.uint8))
        assert dec.wait_idle()
        got = []
        while not events.empty():
            got.append(events.get())
        assert got == [ScanRejected("not_printable", "camera"), ScanRejected("not_printable", "camera"),
                       CodeScanned("GOOD-1", "camera")]
    finally:
        dec.stop()


def test_a_real_qr_code_holding_a_bidi_override_is_rejected():
    text = "https://si.example.cn/r/\u202eFDP.exe"
    frame = synth_frame(text, seed=1)
    assert decode_qr(frame) == [text]  # zxing-cpp reads it faithfully; the gate drops it
    events: queue.Queue = queue.Queue()
    dec = QrDecoder(events.put)
    dec.start()
    try:
        dec.submit(frame)
        assert dec.wait_idle()
        assert events.get(timeout=1) == ScanRejected("not_printable", "camera")
        assert events.empty()
    finally:
        dec.stop()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=5))
def test_camera_never_passes_on_unprintable_text(texts):
    events: list = []
    dec = QrDecoder(events.append, decode=lambda grey: texts)
    dec.start()
    try:
        dec.submit(np.zeros((4, 4), np.uint8))
        assert dec.wait_idle()
    finally:
        dec.stop()
    for ev in events:
        assert isinstance(ev, (CodeScanned, ScanRejected)) and ev.source == "camera"
        if isinstance(ev, CodeScanned):
            assert printable_code(ev.text)
    assert len(events) == len(dict.fromkeys(texts))
