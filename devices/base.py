"""Narrow device interfaces, closed status sets and typed results shared by drivers, twins and fakes.

Vocabulary follows CEN/XFS: a device has a status (closed set, reading it never raises), media
state where it applies, events it emits, and commands with timeouts whose expected failures are
returned as values, never raised.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from devices.sam_frames import IdCardData


class DeviceStatus(enum.StrEnum):
    ONLINE = "online"
    NO_DEVICE = "no_device"
    HARDWARE_ERROR = "hardware_error"
    BUSY = "busy"
    OFFLINE = "offline"  # the service behind the device (e.g. pcscd) is not answering


class MediaStatus(enum.StrEnum):
    PRESENT = "present"
    ABSENT = "absent"
    JAMMED = "jammed"
    UNKNOWN = "unknown"


class PaperStatus(enum.StrEnum):
    FULL = "full"
    LOW = "low"  # near end: still prints
    OUT = "out"
    UNKNOWN = "unknown"


Emit = Callable[[object], None]
"""Drivers report events by calling emit(event) from their own threads; the runtime queues them."""


# ---------------------------------------------------------------- social-security card (PC/SC)


class CardFault(enum.StrEnum):
    NO_READER = "no_reader"
    NO_CARD = "no_card"
    REMOVED = "removed"  # pulled out mid-operation
    UNREADABLE = "unreadable"  # transport or chip error
    NOT_SSCARD = "not_sscard"  # SSSE application not found
    NEEDS_SAM = "needs_sam"  # 3.0 card: EF06 answered 6982 without a PSAM
    INVALID_DATA = "invalid_data"  # records present but wrong (bad check digit, bad dates)
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class SSCardData:
    """What the chip says about its holder (EF05 + EF06)."""

    name: str
    ssn: str  # 社会保障号码 = citizen ID number
    card_number: str
    card_id: str  # 卡识别码
    card_type: str
    card_version: str  # "2.00", "3.00"
    init_org: str
    issue_date: date | None
    expiry_date: date | None
    gender: str  # GB/T 2261.1 code: "1" male, "2" female, "0"/"9" other
    nation: int | None
    birth_place: str
    birth_date: date | None

    @property
    def region_code(self) -> str:
        return self.card_id[:6]

    @property
    def generation(self) -> int:
        return int(self.card_version[:1]) if self.card_version[:1].isdigit() else 0


@dataclass(frozen=True)
class CardInserted:
    reader: str


@dataclass(frozen=True)
class CardRemoved:
    reader: str


@dataclass(frozen=True)
class ReaderStatusChanged:
    reader: str
    status: DeviceStatus


@dataclass(frozen=True)
class CardReadOk:
    data: SSCardData = field(repr=False)


@dataclass(frozen=True)
class CardReadFailed:
    fault: CardFault
    detail: str = ""  # technical, for logs and the technician; never shown raw to residents


class PinOutcome(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"
    BLOCKED = "blocked"
    FAILED = "failed"  # transport failure / card removed: see fault


@dataclass(frozen=True)
class PinResult:
    outcome: PinOutcome
    tries_left: int | None = None  # as the card reports it (63Cx); the kiosk keeps no counter
    fault: CardFault | None = None


class SSCardReader(Protocol):
    def start(self, emit: Emit) -> None:
        """Begin watching readers; emits CardInserted / CardRemoved / ReaderStatusChanged."""

    def stop(self) -> None: ...

    def status(self) -> DeviceStatus:
        """Never raises."""
        ...

    def media(self) -> MediaStatus: ...

    def read(self, timeout: float = 5.0) -> CardReadOk | CardReadFailed:
        """Blocking; runs on a worker thread."""
        ...

    def verify_pin(self, pin: str, timeout: float = 5.0) -> PinResult: ...


# ---------------------------------------------------------------- receipt printer (ESC/POS)


@dataclass(frozen=True)
class PrinterStatus:
    device: DeviceStatus
    paper: PaperStatus = PaperStatus.UNKNOWN

    @property
    def can_print(self) -> bool:
        return self.device is DeviceStatus.ONLINE and self.paper in (PaperStatus.FULL, PaperStatus.LOW)


class PrintOutcome(enum.StrEnum):
    PRINTED = "printed"
    PAPER_OUT = "paper_out"
    OFFLINE = "offline"
    ERROR = "error"


@dataclass(frozen=True)
class PrintResult:
    outcome: PrintOutcome
    paper: PaperStatus = PaperStatus.UNKNOWN
    detail: str = ""


class ReceiptPrinter(Protocol):
    def status(self) -> PrinterStatus:
        """Never raises."""
        ...

    def print_receipt(self, data: bytes, timeout: float = 10.0) -> PrintResult:
        """Checks paper before and after; sends nothing but the status query when out of paper."""
        ...


# ---------------------------------------------------------------- ID card and code events


class IdCardFault(enum.StrEnum):
    NO_DEVICE = "no_device"  # port missing, or the module does not answer
    NO_CARD = "no_card"  # read_once only: nothing was placed before the timeout
    UNREADABLE = "unreadable"  # read failed (SW3 ≠ 90, garbled frames), or a layout we do not know
    INVALID_DATA = "invalid_data"  # read fine, content wrong (check digit, dates, codes)
    EXPIRED = "expired"  # valid_to < today; the data rides along
    UNSUPPORTED = "unsupported"  # the module does not know the command (SW3 21)


@dataclass(frozen=True)
class IdCardPlaced:
    data: IdCardData = field(repr=False)


@dataclass(frozen=True)
class IdCardRemoved:
    pass


@dataclass(frozen=True)
class IdCardFailed:
    fault: IdCardFault
    detail: str = ""  # technical, no personal data; for logs and technicians
    data: IdCardData | None = field(default=None, repr=False)  # set for EXPIRED


@dataclass(frozen=True)
class CodeScanned:
    text: str = field(repr=False)  # may be a live e-SS-card token: keep it out of logs
    source: str = "scanner"  # "scanner" | "camera"


@dataclass(frozen=True)
class ScanRejected:
    reason: str  # "too_long" | "undecodable" | "not_printable"
    source: str = "scanner"
