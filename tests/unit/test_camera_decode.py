"""QR decoding from camera frames: realistic 1280×720 frames, latest-frame-wins, debounce, twin source."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest
from PIL import Image

from devices.base import DeviceStatus
from devices.camera import QrDecoder, V4l2Camera, decode_qr, to_grey
from devices.scanner import CodeScanned
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
