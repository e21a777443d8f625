"""In-memory fakes for unit tests of the layers above the drivers (never the only test of a driver)."""

from __future__ import annotations

import threading

from devices.base import (
    CardFault,
    CardInserted,
    CardReadFailed,
    CardReadOk,
    CardRemoved,
    DeviceStatus,
    MediaStatus,
    PaperStatus,
    PinOutcome,
    PinResult,
    PrinterStatus,
    PrintOutcome,
    PrintResult,
    SSCardData,
)


class FakeCardReader:
    def __init__(self) -> None:
        self.emit = None
        self.card: SSCardData | None = None
        self.fault: CardFault | None = None
        self.pin = "123456"
        self.tries_left = 3
        self.reads = 0
        self.lock = threading.Lock()

    def start(self, emit) -> None:
        self.emit = emit

    def stop(self) -> None:
        self.emit = None

    def status(self) -> DeviceStatus:
        return DeviceStatus.ONLINE

    def media(self) -> MediaStatus:
        return MediaStatus.PRESENT if self.card or self.fault else MediaStatus.ABSENT

    def insert(self, card: SSCardData | None, fault: CardFault | None = None, pin: str = "123456", tries=3):
        self.card, self.fault, self.pin, self.tries_left = card, fault, pin, tries
        if self.emit:
            self.emit(CardInserted("fake"))

    def remove(self) -> None:
        self.card = self.fault = None
        if self.emit:
            self.emit(CardRemoved("fake"))

    def read(self, timeout: float = 5.0):
        self.reads += 1
        if self.fault:
            return CardReadFailed(self.fault)
        return CardReadOk(self.card) if self.card else CardReadFailed(CardFault.NO_CARD)

    def verify_pin(self, pin: str, timeout: float = 5.0) -> PinResult:
        if self.card is None:
            return PinResult(PinOutcome.FAILED, fault=CardFault.NO_CARD)
        if self.tries_left == 0:
            return PinResult(PinOutcome.BLOCKED, 0)
        if pin == self.pin:
            self.tries_left = 3
            return PinResult(PinOutcome.OK)
        self.tries_left -= 1
        return PinResult(PinOutcome.WRONG if self.tries_left else PinOutcome.BLOCKED, self.tries_left)


class FakePrinter:
    def __init__(self, paper: PaperStatus = PaperStatus.FULL) -> None:
        self.paper = paper
        self.printed: list[bytes] = []

    def status(self) -> PrinterStatus:
        return PrinterStatus(DeviceStatus.ONLINE, self.paper)

    def print_receipt(self, data: bytes, timeout: float = 10.0) -> PrintResult:
        if self.paper is PaperStatus.OUT:
            return PrintResult(PrintOutcome.PAPER_OUT, self.paper)
        self.printed.append(data)
        return PrintResult(PrintOutcome.PRINTED, self.paper)
