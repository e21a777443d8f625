"""Camera frames and QR decoding off the main thread.

`FrameSource` gives grey frames; `V4l2Camera` is the real one (OpenCV, if installed); the twin in
sim/camera_twin.py serves image files. A camera that takes photos (the document camera, the face photo) also
has `read_colour()` (the preview) and `capture_still()` (one fresh colour frame, or CameraError). `QrDecoder` keeps only the newest frame (a slow
decode drops stale frames instead of queueing them), decodes with zxing-cpp on its own thread and
emits CodeScanned(text, source="camera") once per code shown (debounced while it stays in view).
A decode that is not printable text becomes ScanRejected("not_printable", "camera"), by the same rule
as the serial scanner (devices.scanner.code_event), and is debounced the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import zxingcpp

from devices.base import DeviceStatus, Emit, ScanRejected
from devices.scanner import code_event

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    def read(self) -> np.ndarray | None:
        """Next frame as a 2-D uint8 grey array, or None when there is none (yet, or any more)."""

    def status(self) -> DeviceStatus: ...

    def close(self) -> None: ...


def to_grey(frame: np.ndarray) -> np.ndarray:
    """BGR (OpenCV order) or grey → grey uint8, integer BT.601 weights."""
    if frame.ndim == 2:
        return frame if frame.dtype == np.uint8 else frame.astype(np.uint8)
    f = frame.astype(np.uint16)
    return ((f[..., 0] * 29 + f[..., 1] * 150 + f[..., 2] * 77) >> 8).astype(np.uint8)


def decode_qr(grey: np.ndarray) -> list[str]:
    """All QR codes zxing-cpp finds in one grey frame."""
    qr = zxingcpp.BarcodeFormat.QRCode  # one format is a valid set for zxing-cpp; its stubs say otherwise
    return [r.text for r in zxingcpp.read_barcodes(grey, formats=qr) if r.valid]  # pyright: ignore[reportArgumentType]


class CameraError(RuntimeError):
    """The camera gave no frame when one was asked for (unplugged, driver failure)."""


class StillCamera(FrameSource, Protocol):
    def read_colour(self) -> np.ndarray | None:
        """Next frame in colour (BGR, OpenCV order), or None."""

    def capture_still(self) -> np.ndarray:
        """One fresh colour frame for a photo; raises CameraError when the camera gives none."""
        ...


class V4l2Camera:
    """A USB/V4L2 camera through OpenCV. Without OpenCV, or without the device, status is NO_DEVICE.

    Reads are serialised by a lock: the preview thread and a still capture may ask at the same moment, and an
    OpenCV capture object is not safe to use from two threads at once."""

    def __init__(self, device: int | str = 0, width: int = 1280, height: int = 720, fps: int = 30):
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self.detail = ""
        self._cap = None
        self._status = DeviceStatus.NO_DEVICE
        self._lock = threading.Lock()

    def open(self) -> DeviceStatus:
        try:
            import cv2  # optional: opencv-python-headless
        except ImportError:
            self.detail = "opencv not installed (pip install opencv-python-headless)"
            self._status = DeviceStatus.NO_DEVICE
            return self._status
        try:
            cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
            if not cap.isOpened():
                cap.release()
                self.detail = f"cannot open camera {self.device}"
                self._status = DeviceStatus.NO_DEVICE
                return self._status
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a backlog
            self._cap = cap
            self._status = DeviceStatus.ONLINE
        except Exception as exc:  # a driver error opening the device is a status, not a crash
            self.detail = type(exc).__name__
            self._status = DeviceStatus.HARDWARE_ERROR
        return self._status

    def status(self) -> DeviceStatus:
        return self._status

    def read(self) -> np.ndarray | None:
        frame = self.read_colour()
        return None if frame is None else to_grey(frame)

    def read_colour(self) -> np.ndarray | None:
        with self._lock:
            if self._cap is None:
                return None
            try:
                ok, frame = self._cap.read()
            except Exception:  # unplugged mid-read
                ok, frame = False, None
            if not ok or frame is None:
                self._status = DeviceStatus.NO_DEVICE
                return None
            return frame

    def capture_still(self, flush: int = 1) -> np.ndarray:
        """A fresh frame: the driver may hold one already-exposed frame (buffer size 1), so it is skipped."""
        with self._lock:
            cap = self._cap
            if cap is None:
                raise CameraError(self.detail or "camera not open")
            try:
                for _ in range(flush):
                    cap.grab()
                ok, frame = cap.read()
            except Exception as exc:  # unplugged mid-read
                ok, frame = False, None
                self.detail = type(exc).__name__
            if not ok or frame is None:
                self._status = DeviceStatus.NO_DEVICE
                raise CameraError("no frame from the camera")
            return frame

    def close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None


class QrDecoder:
    """Decode the newest frame on a worker thread; emit each distinct code once while it stays in view.

    A code is emitted again only after it has been out of view for `debounce` seconds.
    """

    def __init__(
        self,
        emit: Emit,
        source: FrameSource | None = None,
        debounce: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        decode: Callable[[np.ndarray], list[str]] = decode_qr,
    ):
        self._emit = emit
        self.source = source
        self.debounce = debounce
        self._clock = clock
        self._decode = decode
        self._cond = threading.Condition()
        self._latest: np.ndarray | None = None
        self._last_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.frames_in = 0
        self.frames_decoded = 0
        self.frames_dropped = 0
        self.decode_seconds = 0.0

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._work, name="qr-decode", daemon=True)]
        if self.source is not None:
            self._threads.append(threading.Thread(target=self._capture, name="qr-capture", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads = []

    def status(self) -> DeviceStatus:
        if self.source is None:
            return DeviceStatus.ONLINE
        try:
            return self.source.status()
        except Exception:  # a status read never raises
            return DeviceStatus.HARDWARE_ERROR

    def submit(self, frame: np.ndarray) -> None:
        """Offer a frame (any thread). Replaces a frame still waiting: stale frames are worthless."""
        with self._cond:
            self.frames_in += 1
            if self._latest is not None:
                self.frames_dropped += 1
            self._latest = frame
            self._cond.notify()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """For tests and benches: wait until no frame is waiting to be decoded."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._latest is not None or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    _busy = False

    def _capture(self) -> None:
        while not self._stop.is_set():
            source = self.source
            if source is None:
                return
            try:
                frame = source.read()
            except Exception as exc:
                log.info("camera read failed: %s", type(exc).__name__)
                frame = None
            if frame is None:
                self._stop.wait(0.05)
                continue
            self.submit(frame)

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._latest is None and not self._stop.is_set():
                    self._cond.wait(0.2)
                if self._stop.is_set():
                    return
                frame, self._latest = self._latest, None
                if frame is None:
                    continue
                self._busy = True
            try:
                t0 = time.perf_counter()
                texts = self._decode(to_grey(frame))
                self.decode_seconds += time.perf_counter() - t0
                self.frames_decoded += 1
                self._report(texts)
            except Exception as exc:  # never raise from the thread
                log.warning("qr decode failed: %s", type(exc).__name__)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _report(self, texts: list[str]) -> None:
        now = self._clock()
        for text in dict.fromkeys(texts):
            last = self._last_seen.get(text)
            self._last_seen[text] = now
            if last is None or now - last > self.debounce:
                ev = code_event(text, "camera")
                if isinstance(ev, ScanRejected):
                    log.info("camera: dropped a code (%s, %d characters)", ev.reason, len(text))
                self._emit(ev)
        for text in [t for t, seen in self._last_seen.items() if now - seen > self.debounce]:
            del self._last_seen[text]
