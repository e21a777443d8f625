"""ESC/POS receipt printer on a serial port (docs/protocols.md section 3).

Implements devices.base.ReceiptPrinter. The bytes of a receipt are built elsewhere (kiosk/receipts.py);
this driver only checks the paper, sends, drains and checks again. Nothing here raises for an
expected failure: a missing port, a silent printer or an empty roll come back as values.

Paper-sensor byte (DLE EOT 4): Epson and python-escpos read bits 2–3 as "near end" and bits 5–6 as
"paper end" (0x12 ok, 0x1E near end, 0x72 out). One public note reads bit 3 alone as paper end; we
follow the majority: a byte with bit 3 but neither bit 5 nor 6 (e.g. 0x1A) is LOW, not OUT. LOW still
prints, and the caller learns it through PrintResult.paper so it can offer the QR on screen too.
A byte whose fixed bits are wrong (bit 1, bit 4 must be 1; bits 0, 7 must be 0) is not a status
answer: HARDWARE_ERROR with paper UNKNOWN.
"""

from __future__ import annotations

import errno
import logging
import threading
import time

import serial

from devices.base import DeviceStatus, PaperStatus, PrinterStatus, PrintOutcome, PrintResult

log = logging.getLogger(__name__)

DLE_EOT_PAPER = b"\x10\x04\x04"
_FIXED_MASK, _FIXED_BITS = 0x93, 0x12  # bits 0,1,4,7 must read 0,1,1,0
_NEAR_END, _PAPER_END = 0x0C, 0x60


def interpret_paper_status(byte: int) -> PrinterStatus:
    """The answer to DLE EOT 4 as a status. Pure; never raises."""
    if not 0 <= byte <= 0xFF or byte & _FIXED_MASK != _FIXED_BITS:
        return PrinterStatus(DeviceStatus.HARDWARE_ERROR, PaperStatus.UNKNOWN)
    if byte & _PAPER_END:
        return PrinterStatus(DeviceStatus.ONLINE, PaperStatus.OUT)
    if byte & _NEAR_END:
        return PrinterStatus(DeviceStatus.ONLINE, PaperStatus.LOW)
    return PrinterStatus(DeviceStatus.ONLINE, PaperStatus.FULL)


class SerialPrinter:
    """A receipt printer on `port` (e.g. /dev/ttyUSB0, or a udev name), 8N1."""

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        profile: str = "native-qr",
        timeout: float = 2.0,
        settle: float = 0.5,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.profile = profile  # which kiosk.receipts profile to render with; the driver sends any bytes
        self.timeout = timeout
        # Status after a receipt: the printer answers DLE EOT at once, even with lines still in its
        # buffer; waiting a little lets a roll that ends mid-receipt show up in the answer.
        self.settle = settle
        self._ser: serial.Serial | None = None
        self._lock = threading.Lock()
        self._last: PrinterStatus | None = None
        self._open_error = DeviceStatus.NO_DEVICE

    # -- connection

    def _open(self) -> serial.Serial | None:
        self._open_error = DeviceStatus.NO_DEVICE
        if self._ser is not None and self._ser.is_open:
            return self._ser
        try:
            # exclusive: a second program writing into the middle of a receipt would garble both
            self._ser = serial.Serial(
                self.port, self.baudrate, timeout=self.timeout, write_timeout=self.timeout, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as e:
            log.debug("printer port %s: cannot open (%s)", self.port, e)
            if getattr(e, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK) and "lock" in str(e):
                self._open_error = DeviceStatus.BUSY  # another process holds the port
            self._ser = None
        return self._ser

    def _drop(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except (serial.SerialException, OSError):
                pass
        self._ser = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- status

    def _query(self) -> PrinterStatus:
        ser = self._open()
        if ser is None:
            return PrinterStatus(self._open_error)
        try:
            ser.reset_input_buffer()  # a stale byte must not pass for this answer
            ser.write(DLE_EOT_PAPER)
            ser.flush()
            ans = ser.read(1)
        except (serial.SerialException, OSError, ValueError) as e:
            log.debug("printer port %s: status query failed (%s)", self.port, e)
            self._drop()
            return PrinterStatus(DeviceStatus.OFFLINE)
        if not ans:
            return PrinterStatus(DeviceStatus.OFFLINE)
        return interpret_paper_status(ans[0])

    def _note(self, st: PrinterStatus) -> PrinterStatus:
        if st != self._last:  # log on change only
            log.info("printer %s: %s, paper %s", self.port, st.device.value, st.paper.value)
            self._last = st
        return st

    def status(self) -> PrinterStatus:
        """DLE EOT 4. NO_DEVICE: the port cannot be opened; BUSY: another process holds it;
        OFFLINE: no answer within timeout; HARDWARE_ERROR: an answer that is not a status byte."""
        try:
            with self._lock:
                return self._note(self._query())
        except Exception:  # status reads never raise, whatever pyserial does
            log.exception("printer %s: unexpected error reading status", self.port)
            return PrinterStatus(DeviceStatus.HARDWARE_ERROR)

    # -- printing

    def print_receipt(self, data: bytes, timeout: float = 10.0) -> PrintResult:
        try:
            with self._lock:
                return self._print(data, timeout)
        except Exception as e:
            log.exception("printer %s: unexpected error printing", self.port)
            return PrintResult(PrintOutcome.ERROR, detail=type(e).__name__)

    def _print(self, data: bytes, timeout: float) -> PrintResult:
        before = self._note(self._query())
        ser = self._ser
        if before.device is not DeviceStatus.ONLINE or ser is None:
            return PrintResult(
                _not_online(before.device), before.paper, detail=f"before: {before.device.value}"
            )
        if before.paper is PaperStatus.OUT:
            return PrintResult(PrintOutcome.PAPER_OUT, PaperStatus.OUT, detail="before")
        try:
            ser.write_timeout = max(timeout, len(data) * 10 / self.baudrate * 2)
            ser.write(data)
            ser.flush()  # tcdrain: every byte has left the port
        except (serial.SerialException, OSError) as e:  # includes SerialTimeoutException
            log.warning("printer %s: write failed (%s)", self.port, type(e).__name__)
            self._drop()
            return PrintResult(PrintOutcome.OFFLINE, detail=f"write: {type(e).__name__}")
        finally:
            if self._ser is not None:
                self._ser.write_timeout = self.timeout
        if self.settle > 0:
            time.sleep(self.settle)
        after = self._note(self._query())
        if after.device is not DeviceStatus.ONLINE:
            return PrintResult(_not_online(after.device), after.paper, detail=f"after: {after.device.value}")
        if after.paper is PaperStatus.OUT:
            return PrintResult(PrintOutcome.PAPER_OUT, PaperStatus.OUT, detail="after")
        return PrintResult(PrintOutcome.PRINTED, after.paper)


def _not_online(device: DeviceStatus) -> PrintOutcome:
    return PrintOutcome.ERROR if device is DeviceStatus.HARDWARE_ERROR else PrintOutcome.OFFLINE
