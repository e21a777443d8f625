"""Resident-ID-card reader: a SAM module (GA 467) over serial. Framing lives in devices/sam_frames.py.

A polling thread asks find (20 01) → select (20 02) → read (30 01) while the reader is idle; while a
card lies on it, it only checks (find, else select) that the card is still there. Everything it learns
becomes an event through `emit`; nothing is raised from the thread. Every exchange has a timeout,
garbled answers are retried, and a reader that stops answering becomes NO_DEVICE in bounded time.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from datetime import date

import serial

from devices import sam_frames as sf
from devices.base import (  # the events live in base so the session imports no serial code
    DeviceStatus,
    Emit,
    IdCardFailed,
    IdCardFault,
    IdCardPlaced,
    IdCardRemoved,
    MediaStatus,
    ReaderStatusChanged,
)
from devices.sam_frames import CardType, IdCardData, NoWltDecoder, WltDecoder

__all__ = [
    "CardType", "IdCardData", "IdCardFault", "IdCardPlaced", "IdCardRemoved", "IdCardFailed",
    "ReaderStatusChanged", "SerialIdCardReader", "WltDecoder", "NoWltDecoder",
]

log = logging.getLogger(__name__)


class _NoAnswer(Exception):
    """Internal: the module did not answer in time (never escapes this module)."""


class _Garbled(Exception):
    """Internal: answers kept arriving broken after every retry."""


class SerialIdCardReader:
    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        poll_interval: float = 0.25,
        timeout: float = 1.0,
        retries: int = 3,
        today: Callable[[], date] = date.today,
        name: str = "idcard",
        reopen_interval: float = 2.0,
    ):
        self.port = port
        self.baudrate = baudrate
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.retries = retries
        self.today = today
        self.name = name
        self.reopen_interval = reopen_interval
        self._ser: serial.Serial | None = None
        self._parser = sf.FrameParser()
        self._io = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._emit: Emit = lambda _e: None
        self._status = DeviceStatus.NO_DEVICE
        self._status_known = False
        self._present = False

    # ------------------------------------------------------------------ public

    def start(self, emit: Emit) -> None:
        if self._thread is not None:
            return
        self._emit = emit
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout * (self.retries + 1) + 2.0)
            self._thread = None
        with self._io:
            self._close()

    def status(self) -> DeviceStatus:
        return self._status

    def media(self) -> MediaStatus:
        if self._status is not DeviceStatus.ONLINE:
            return MediaStatus.UNKNOWN
        return MediaStatus.PRESENT if self._present else MediaStatus.ABSENT

    def sam_status(self) -> DeviceStatus:
        """Ask the module (11 FF). ONLINE on 90, HARDWARE_ERROR on another SW3, BUSY when another
        process holds the port, else NO_DEVICE."""
        try:
            with self._io:
                if not self._open():
                    return self._open_error
                r = self._transact(sf.SAM_STATUS, attempts_on_timeout=2)
            return DeviceStatus.ONLINE if r.sw3 == sf.SW_OK else DeviceStatus.HARDWARE_ERROR
        except (_NoAnswer, _Garbled):
            return DeviceStatus.NO_DEVICE
        except Exception as exc:  # a status read never raises
            log.warning("idcard sam status failed: %s", type(exc).__name__)
            with self._io:
                self._close()
            return DeviceStatus.NO_DEVICE

    def read_once(self, timeout: float = 5.0) -> IdCardData | IdCardFailed:
        """Blocking one-shot read for the CLI: waits up to `timeout` for a card. Never raises."""
        deadline = time.monotonic() + timeout
        try:
            with self._io:
                if not self._open():
                    return IdCardFailed(IdCardFault.NO_DEVICE, f"cannot open {self.port}")
            st = self.sam_status()
            if st is not DeviceStatus.ONLINE:
                return IdCardFailed(IdCardFault.NO_DEVICE, f"reader not answering (sam status {st.value})")
            while True:
                with self._io:
                    found = self._transact(sf.FIND_CARD)
                    if found.sw3 == sf.SW_FIND_OK:
                        result = self._select_and_read()
                        if result is not None:
                            return result
                if time.monotonic() + self.poll_interval > deadline:
                    return IdCardFailed(IdCardFault.NO_CARD, "no card on the reader")
                time.sleep(self.poll_interval)
        except _NoAnswer:
            return IdCardFailed(IdCardFault.NO_DEVICE, "reader stopped answering")
        except _Garbled as exc:
            return IdCardFailed(IdCardFault.UNREADABLE, str(exc))
        except Exception as exc:
            log.warning("idcard read_once failed: %s", type(exc).__name__)
            return IdCardFailed(IdCardFault.NO_DEVICE, type(exc).__name__)
        finally:
            if self._thread is None:
                with self._io:
                    self._close()

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        misses = 0
        while not self._stop.is_set():
            wait = self.poll_interval
            try:
                if self._status is not DeviceStatus.ONLINE:
                    st = self.sam_status()
                    self._set_status(st)
                    if st is not DeviceStatus.ONLINE:
                        self._stop.wait(self.reopen_interval)
                        continue
                with self._io:
                    if not self._present:
                        if self._transact(sf.FIND_CARD).sw3 == sf.SW_FIND_OK:
                            result = self._select_and_read()
                            if result is not None:
                                self._present = True
                                misses = 0
                                self._emit_result(result)
                    elif self._still_present():
                        misses = 0
                    else:
                        misses += 1
                        if misses >= 2:  # one miss may be an RF glitch
                            self._present = False
                            self._emit(IdCardRemoved())
                        wait = self.poll_interval / 2
            except _NoAnswer:
                self._lost("reader stopped answering")
            except _Garbled as exc:
                log.info("idcard: %s", exc)
            except Exception as exc:  # never raise from the thread
                log.warning("idcard poll error: %s", type(exc).__name__)
                with self._io:
                    self._close()
                self._lost(type(exc).__name__)
            self._stop.wait(wait)

    def _emit_result(self, result: IdCardData | IdCardFailed) -> None:
        if isinstance(result, IdCardData):
            self._emit(IdCardPlaced(result))
        else:
            log.info("idcard read failed: %s %s", result.fault.value, result.detail)
            self._emit(result)

    def _lost(self, why: str) -> None:
        log.info("idcard: %s", why)
        with self._io:
            self._close()  # reopen later: a USB reader may come back under the same name
        if self._present:
            self._present = False
            self._emit(IdCardRemoved())
        self._set_status(DeviceStatus.NO_DEVICE)

    def _set_status(self, st: DeviceStatus) -> None:
        if st is not self._status or not self._status_known:
            self._status = st
            self._status_known = True
            self._emit(ReaderStatusChanged(self.name, st))

    # ------------------------------------------------------------------ exchanges (hold self._io)

    def _still_present(self) -> bool:
        # A read card may stay halted and fail find (80) while it lies there; select still reaches it.
        if self._transact(sf.FIND_CARD).sw3 == sf.SW_FIND_OK:
            return True
        return self._transact(sf.SELECT_CARD).sw3 == sf.SW_OK

    def _select_and_read(self) -> IdCardData | IdCardFailed | None:
        """None: the card left between find and select (not worth an event)."""
        try:
            return self._select_and_read_once()
        except _Garbled as exc:
            return IdCardFailed(IdCardFault.UNREADABLE, str(exc))

    def _select_and_read_once(self) -> IdCardData | IdCardFailed | None:
        for attempt in range(2):
            if self._transact(sf.SELECT_CARD).sw3 != sf.SW_OK:
                return None
            r = self._transact(sf.READ_TEXT_PHOTO)
            if r.sw3 == sf.SW_OK:
                break
            if r.sw3 == sf.SW_UNKNOWN_CMD:
                return IdCardFailed(IdCardFault.UNSUPPORTED, f"read answered sw3=0x{r.sw3:02X}")
            if attempt == 1:
                return IdCardFailed(IdCardFault.UNREADABLE, f"read answered sw3=0x{r.sw3:02X}")
        try:
            data = sf.decode_read_response(r.data)
        except sf.DecodeError as exc:
            return IdCardFailed(IdCardFault(exc.fault), exc.detail)
        if data.is_expired(self.today()):
            return IdCardFailed(IdCardFault.EXPIRED, f"valid_to {data.valid_to}", data)
        return data

    def _transact(self, cmd: tuple[int, int], attempts_on_timeout: int = 2) -> sf.Response:
        """Send one command, return its answer. Retries garbled answers and SW3 10 (reader saw a bad
        checksum); raises _NoAnswer after `attempts_on_timeout` silent timeouts, _Garbled after
        `retries` broken answers."""
        if self._ser is None:
            raise _NoAnswer("port closed")
        frame = sf.build_command(*cmd)
        timeouts = garbled = 0
        while True:
            self._ser.reset_input_buffer()
            self._parser.reset()
            self._ser.write(frame)
            outcome = self._await_response()
            if outcome is None:
                timeouts += 1
                if timeouts >= attempts_on_timeout:
                    raise _NoAnswer(f"no answer to {cmd[0]:02X} {cmd[1]:02X}")
            elif isinstance(outcome, str) or outcome.sw3 == sf.SW_CHECKSUM:
                garbled += 1
                if garbled >= self.retries:
                    raise _Garbled(f"answers to {cmd[0]:02X} {cmd[1]:02X} kept arriving broken")
            else:
                return outcome

    def _await_response(self) -> sf.Response | str | None:
        """A response, "garbled" (bad checksum or shape), or None on timeout."""
        deadline = time.monotonic() + self.timeout
        ser = self._ser
        if ser is None:
            return None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ser.timeout = min(remaining, 0.05)
            chunk = ser.read(max(1, ser.in_waiting))
            if not chunk:
                continue
            items = self._parser.feed(chunk)
            bad = False
            for item in items:
                if isinstance(item, sf.BadFrame):
                    bad = bad or item.reason == "checksum"
                    continue
                try:
                    return sf.parse_response(item)
                except sf.FrameError:
                    bad = True
            if bad:
                return "garbled"

    def _open(self) -> bool:
        if self._ser is not None:
            return True
        self._open_error = DeviceStatus.NO_DEVICE
        try:
            self._ser = serial.Serial(
                self.port, self.baudrate, timeout=0.05, write_timeout=self.timeout, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            log.info("idcard: cannot open %s: %s", self.port, type(exc).__name__)
            if getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK) and "lock" in str(exc):
                self._open_error = DeviceStatus.BUSY  # another process (the running kiosk) holds the port
            self._ser = None
            return False
        self._parser.reset()
        return True

    def _close(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except Exception:  # closing a vanished port may fail; it is closed either way
                pass
            self._ser = None
