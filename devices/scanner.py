"""QR/barcode scanner over serial (USB-CDC or UART): each code arrives as one terminated line.

A scanner cannot be asked anything, so an open port counts as ONLINE. Lines too long to be a code,
bytes that are neither UTF-8 nor GB18030, and text that is not printable are dropped and reported
(ScanRejected), never passed on half-read. `code_event` is the one gate for the scanner and the camera.
"""

from __future__ import annotations

import logging
import threading

import serial

from devices.base import CodeScanned, DeviceStatus, Emit, ReaderStatusChanged, ScanRejected

log = logging.getLogger(__name__)


def printable_code(text: str) -> bool:
    """True when a decoded code is non-empty printable text.

    str.isprintable() refuses exactly the Unicode categories a code must not carry: control characters
    (Cc, incl. tab and DEL), format characters (Cf: zero-width space/joiners, bidi overrides and
    isolates, BOM), lone surrogates (Cs), private-use (Co) and unassigned code points and noncharacters
    (Cn), and separators other than the ASCII space (Zl, Zp, Zs). Such a "code" is a mangled read or
    crafted to look like something else on screen or in a log; no e-card token or receipt URL has one.
    """
    return bool(text) and text.isprintable()


def code_event(text: str, source: str) -> CodeScanned | ScanRejected:
    """What a decoded code becomes, for every code source: CodeScanned only for printable text."""
    if printable_code(text):
        return CodeScanned(text, source)
    return ScanRejected("not_printable", source)


def decode_code(raw: bytes) -> str | None:
    """Bytes of one line → text, or None. UTF-8 first, then GB18030 (many Chinese scanners send GBK)."""
    for enc in ("utf-8", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return None


def line_event(line: bytes | None, source: str = "scanner") -> CodeScanned | ScanRejected:
    """One line from the splitter (None: an overlong line that was dropped) → the event to emit."""
    if line is None:
        return ScanRejected("too_long", source)
    text = decode_code(line)
    if text is None:
        return ScanRejected("undecodable", source)
    return code_event(text, source)


class LineSplitter:
    """Splits a byte stream into terminated lines; bounded: a line over max_len is dropped whole.

    Hand-written because pyserial's read_until cannot drop an overlong line and resync.
    """

    def __init__(self, terminator: bytes = b"\r", max_len: int = 4096):
        if not terminator:
            raise ValueError("terminator must not be empty")
        self.terminator = terminator
        self.max_len = max_len
        self._buf = bytearray()
        self._skipping = False  # inside an overlong line: drop until the next terminator

    def feed(self, data: bytes) -> list[bytes | None]:
        """Complete lines (terminator and surrounding CR/LF stripped); None marks a dropped long line."""
        self._buf += data
        out: list[bytes | None] = []
        while True:
            i = self._buf.find(self.terminator)
            if i < 0:
                if len(self._buf) > self.max_len:
                    if not self._skipping:
                        out.append(None)
                    self._skipping = True
                    keep = len(self.terminator) - 1  # a terminator may straddle two reads
                    del self._buf[: len(self._buf) - keep]
                return out
            line = bytes(self._buf[:i]).strip(b"\r\n")
            del self._buf[: i + len(self.terminator)]
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > self.max_len:
                out.append(None)
            elif line:
                out.append(line)


class SerialScanner:
    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        terminator: bytes = b"\r",
        timeout: float = 0.1,
        max_len: int = 4096,
        name: str = "scanner",
        reopen_interval: float = 2.0,
    ):
        self.port = port
        self.baudrate = baudrate
        self.terminator = terminator
        self.timeout = timeout
        self.max_len = max_len
        self.name = name
        self.reopen_interval = reopen_interval
        self._status = DeviceStatus.NO_DEVICE
        self._status_known = False
        self._emit: Emit = lambda _e: None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, emit: Emit) -> None:
        if self._thread is not None:
            return
        self._emit = emit
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-read", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 2.0)
            self._thread = None

    def status(self) -> DeviceStatus:
        return self._status

    def _set_status(self, st: DeviceStatus) -> None:
        if st is not self._status or not self._status_known:
            self._status, self._status_known = st, True
            self._emit(ReaderStatusChanged(self.name, st))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ser = serial.Serial(self.port, self.baudrate, timeout=self.timeout, exclusive=True)
            except (serial.SerialException, OSError, ValueError) as exc:
                log.info("scanner: cannot open %s: %s", self.port, type(exc).__name__)
                self._set_status(DeviceStatus.NO_DEVICE)
                self._stop.wait(self.reopen_interval)
                continue
            self._set_status(DeviceStatus.ONLINE)
            splitter = LineSplitter(self.terminator, self.max_len)
            try:
                while not self._stop.is_set():
                    chunk = ser.read(max(1, ser.in_waiting))
                    if chunk:
                        self._deliver(splitter.feed(chunk))
            except Exception as exc:  # unplugged mid-read: report and reopen, never raise
                log.info("scanner: read failed: %s", type(exc).__name__)
                self._set_status(DeviceStatus.NO_DEVICE)
            finally:
                try:
                    ser.close()
                except Exception:  # a vanished port may refuse to close; it is gone either way
                    pass
            self._stop.wait(self.reopen_interval)

    def _deliver(self, lines: list[bytes | None]) -> None:
        for line in lines:
            ev = line_event(line)
            if isinstance(ev, ScanRejected):
                # reason and length only: a rejected line may still hold part of a live token
                log.info("scanner: dropped a line (%s%s)", ev.reason, f", {len(line)} bytes" if line else "")
            self._emit(ev)
