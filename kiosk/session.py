"""The session: a pure state machine. transition(state, event, now) -> (state, effects).

No threads, no I/O, no Kivy: time is passed in. Every rule a resident meets lives here: timeouts, card
pulled out, PIN answers (the card counts tries, never the kiosk), what each credential may do.
Results of effects carry the session id (sid) they were started for; results from an earlier session
are dropped, so a slow read of a card already pulled out can never show on the next person's screen.
Backend-session tokens never enter the state: personal effects carry the Person (and its api Credential), the
runtime opens the backend session for that sid when the first personal call needs it and closes it at
SessionEnded, so the state stays free of secrets and an old result cannot carry a token into a new session.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from api.enums import Credential
from api.models import Pension, Verification
from api.privacy import mask_id, mask_name
from devices.base import (
    CardFault,
    CardInserted,
    CardReadFailed,
    CardReadOk,
    CardRemoved,
    CodeScanned,
    IdCardFailed,
    IdCardFault,
    IdCardPlaced,
    IdCardRemoved,
    PinOutcome,
    PinResult,
    PrintOutcome,
    PrintResult,
    SSCardData,
)
from kiosk import catalog
from kiosk.catalog import Level

PIN_LENGTH = 6


class Screen(enum.StrEnum):
    IDLE = "idle"
    READING = "reading"
    PIN = "pin"
    CHECKING_PIN = "checking_pin"
    MENU = "menu"
    LOADING = "loading"
    PENSION = "pension"
    PRINTING = "printing"
    SHOW_QR = "show_qr"  # the printer could not print: show the receipt's QR for a phone photo
    TAKE_CARD = "take_card"
    ERROR = "error"
    SCAN = "scan"  # camera preview: show the phone's e-card code or an old receipt
    CHECKING_CODE = "checking_code"
    RECEIPT_CHECK = "receipt_check"  # what a scanned receipt covers and whether it is genuine
    CONFIRM = "confirm"  # a filing is only sent after the person confirms it
    SUBMITTING = "submitting"
    FILED = "filed"


class Fault(enum.StrEnum):
    CARD_UNREADABLE = "card_unreadable"
    NOT_SSCARD = "not_sscard"
    CARD_INVALID = "card_invalid"
    NEEDS_SAM = "needs_sam"
    PIN_WRONG = "pin_wrong"
    PIN_BLOCKED = "pin_blocked"
    BACKEND_OFFLINE = "backend_offline"
    BACKEND_ERROR = "backend_error"
    PRINTER = "printer"  # kept for the printer screen's wording; SHOW_QR carries the receipt
    IDCARD_UNREADABLE = "idcard_unreadable"
    IDCARD_INVALID = "idcard_invalid"
    IDCARD_EXPIRED = "idcard_expired"
    ECARD_EXPIRED = "ecard_expired"
    ECARD_UNKNOWN = "ecard_unknown"
    ECARD_REVOKED = "ecard_revoked"
    NO_CARD_ON_FILE = "no_card_on_file"


# ------------------------------------------------------------------ events the UI sends


@dataclass(frozen=True)
class Touch:
    """Any touch: the person is still there."""


@dataclass(frozen=True)
class KeyDigit:
    digit: str


@dataclass(frozen=True)
class KeyBackspace:
    pass


@dataclass(frozen=True)
class Choose:
    service: str


@dataclass(frozen=True)
class PrintRequested:
    pass


@dataclass(frozen=True)
class Retry:
    pass


@dataclass(frozen=True)
class Back:
    pass


@dataclass(frozen=True)
class Finish:
    pass


@dataclass(frozen=True)
class StartScan:
    """Idle: the person wants to show a code to the camera."""


@dataclass(frozen=True)
class Confirm:
    pass


@dataclass(frozen=True)
class ToggleElderMode:
    pass


@dataclass(frozen=True)
class SetLocale:
    locale: str


@dataclass(frozen=True)
class Tick:
    """Sent every second by the runtime so timeouts fire with no other event."""


# ------------------------------------------------------------------ results of effects


class BackendFailureKind(enum.StrEnum):
    OFFLINE = "offline"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    SESSION_REFUSED = "session_refused"  # the backend refused the session's token (the runtime drops it)
    RATE_LIMITED = "rate_limited"  # the backend is busy: try again in a moment
    BAD_RESPONSE = "bad_response"


@dataclass(frozen=True)
class Result:
    """Wraps a device or backend result with the session it belongs to."""

    sid: int
    value: object


@dataclass(frozen=True)
class PensionLoaded:
    status: Pension | None = field(repr=False)  # money as Decimal; None: no record


@dataclass(frozen=True)
class BackendFailed:
    kind: BackendFailureKind


@dataclass(frozen=True)
class ReceiptIssued:
    receipt_id: str
    verify_url: str
    lines: tuple[tuple[str, str], ...] = ()  # written by the backend from what it answered: printed as given


@dataclass(frozen=True)
class ECardResolved:
    name: str = field(repr=False)
    ssn: str = field(repr=False)


@dataclass(frozen=True)
class ECardRejected:
    reason: str  # expired | unknown | revoked


@dataclass(frozen=True)
class ReceiptChecked:
    """verification is api.models.Verification, or None: not one of ours."""

    verification: Verification | None = None


@dataclass(frozen=True)
class CardLossFiled:
    filing_id: str
    status: str  # api FilingState: accepted | already_reported
    verify_url: str
    lines: tuple[tuple[str, str], ...] = ()  # the backend's receipt lines; printed as given


# ------------------------------------------------------------------ effects the runtime carries out


@dataclass(frozen=True)
class ReadCard:
    sid: int


@dataclass(frozen=True)
class VerifyPin:
    sid: int
    pin: str = field(repr=False)


@dataclass(frozen=True)
class FetchPension:
    """Personal calls carry the person: the runtime opens the backend session with it if none is open."""

    sid: int
    person: Person = field(repr=False)


@dataclass(frozen=True)
class IssueReceipt:
    """Ask the backend for the receipt of what it answered in this session (idempotency key = receipt_key)."""

    sid: int
    receipt_key: str
    service: str
    person: Person = field(repr=False)


@dataclass(frozen=True)
class PrintReceipt:
    sid: int
    service: str
    holder_name_masked: str
    holder_id_masked: str
    lines: tuple[tuple[str, str], ...]
    qr_url: str


@dataclass(frozen=True)
class ResolveECard:
    """E-card sign-in: opening the backend session with the scanned code names the person."""

    sid: int
    code: str = field(repr=False)


@dataclass(frozen=True)
class VerifyReceipt:
    sid: int
    url: str


@dataclass(frozen=True)
class ReportCardLoss:
    sid: int
    key: str
    person: Person = field(repr=False)


@dataclass(frozen=True)
class Camera:
    """Turn the camera's QR decoding on (scan screen) or off: it costs CPU and sees people."""

    on: bool


@dataclass(frozen=True)
class Speak:
    """Voice guidance: the message id of the screen's spoken prompt."""

    msgid: str


@dataclass(frozen=True)
class SessionEnded:
    """The runtime wipes caches of personal data, closes the backend session of this sid (its token is
    forgotten and never reopened for it) and logs the end, without personal data."""

    sid: int
    reason: str


# ------------------------------------------------------------------ state


@dataclass(frozen=True)
class Person:
    """Who the session serves, whatever the credential."""

    name: str = field(repr=False)
    id_number: str = field(repr=False)
    credential: Credential  # sscard_pin: the card is read first, the PIN (level) proves it

    @classmethod
    def from_sscard(cls, c: SSCardData) -> Person:
        return cls(c.name, c.ssn, Credential.SSCARD_PIN)


@dataclass(frozen=True)
class Settings:
    inactivity: float = 60.0
    pin: float = 45.0
    warn: float = 15.0
    take_card_reminder: float = 15.0


@dataclass(frozen=True)
class State:
    screen: Screen = Screen.IDLE
    sid: int = 0
    locale: str = "zh_CN"
    elder_mode: bool = True
    card_present: bool = False  # a social-security card is in the slot
    idcard_present: bool = False  # an ID card lies on the reader
    person: Person | None = field(default=None, repr=False)
    level: Level = Level.NONE
    pin: str = field(default="", repr=False)
    tries_left: int | None = None
    fault: Fault | None = None
    fault_detail: str = ""
    pending: object | None = field(default=None, repr=False)  # the backend call in flight: Retry re-runs it
    service: str | None = None
    pension: Pension | None = field(default=None, repr=False)
    pension_loaded: bool = False
    receipt_url: str | None = None
    checked: Verification | None = field(default=None, repr=False)  # a scanned receipt's verification
    filing_id: str = ""
    deadline: float | None = None  # when inactivity ends the session; None = no timeout on this screen
    remind_at: float | None = None
    settings: Settings = Settings()
    features: frozenset[str] = frozenset({"idcard", "scan", "camera"})  # devices fitted beyond the card reader

    @property
    def holder_name_masked(self) -> str:
        return mask_name(self.person.name) if self.person else ""

    @property
    def holder_id_masked(self) -> str:
        return mask_id(self.person.id_number) if self.person else ""

    def remaining(self, now: float) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - now)

    def countdown(self, now: float) -> int | None:
        """Seconds to show in the warning (还有 N 秒返回首页), or None when no warning is due."""
        r = self.remaining(now)
        if r is None or r > self.settings.warn:
            return None
        return int(r + 0.999)


def initial_state(
    settings: Settings | None = None, locale: str = "zh_CN", elder_mode: bool = True,
    features: frozenset[str] = frozenset({"idcard", "scan", "camera"}),
) -> State:
    return State(settings=settings or Settings(), locale=locale, elder_mode=elder_mode, features=features)


_SCREEN_TIMEOUT = {
    Screen.SCAN: "inactivity",
    Screen.CHECKING_CODE: "inactivity",
    Screen.RECEIPT_CHECK: "inactivity",
    Screen.CONFIRM: "inactivity",
    Screen.SUBMITTING: "inactivity",
    Screen.FILED: "inactivity",
    # waiting screens too: a stuck device or network can never hold a person's data on screen forever
    Screen.READING: "inactivity",
    Screen.CHECKING_PIN: "inactivity",
    Screen.LOADING: "inactivity",
    Screen.PRINTING: "inactivity",
    Screen.PIN: "pin",
    Screen.MENU: "inactivity",
    Screen.PENSION: "inactivity",
    Screen.SHOW_QR: "inactivity",
    Screen.ERROR: "inactivity",
}


def _go(s: State, screen: Screen, now: float, **changes) -> State:
    s = replace(s, screen=screen, **changes)
    key = _SCREEN_TIMEOUT.get(screen)
    deadline = now + getattr(s.settings, key) if key else None
    remind = now + s.settings.take_card_reminder if screen is Screen.TAKE_CARD else None
    return replace(s, deadline=deadline, remind_at=remind)


def _go_fx(s: State, screen: Screen, now: float, **changes) -> tuple[State, list]:
    """_go, plus switching the camera on entering or leaving the scan screen."""
    was = s.screen is Screen.SCAN
    s = _go(s, screen, now, **changes)
    now_on = s.screen is Screen.SCAN
    return s, ([Camera(now_on)] if was != now_on else [])


def _wiped(s: State) -> State:
    """A state with no personal data: what is left when a session ends."""
    return replace(
        s, person=None, level=Level.NONE, checked=None, filing_id="", pin="", tries_left=None, fault=None,
        fault_detail="", pending=None, service=None, pension=None, pension_loaded=False, receipt_url=None,
    )


def _end(s: State, now: float, reason: str) -> tuple[State, list]:
    """End the session: wipe, then idle, or the take-your-card reminder while a card is still there."""
    effects: list = [SessionEnded(s.sid, reason)] if s.sid and s.screen is not Screen.IDLE else []
    s = _wiped(s)
    if s.card_present or s.idcard_present:
        s, fx = _go_fx(s, Screen.TAKE_CARD, now)
        effects += fx + [Speak("take_card.title" if s.card_present else "take_idcard.title")]
    else:
        s, fx = _go_fx(s, Screen.IDLE, now)
        effects += fx
    return s, effects


def _error(s: State, fault: Fault, now: float, detail: str = ""):
    s, fx = _go_fx(s, Screen.ERROR, now, fault=fault, fault_detail=detail)
    return s, fx + [Speak(f"error.{fault.value}.title")]


def _signed_in(s: State, person: Person, level: Level, now: float) -> tuple[State, list]:
    s, fx = _go_fx(s, Screen.MENU, now, person=person, level=level, tries_left=None)
    return s, fx + [Speak("menu.title")]


def _new_session(s: State) -> State:
    return replace(_wiped(s), sid=s.sid + 1)


_CARD_FAULTS = {
    CardFault.NOT_SSCARD: Fault.NOT_SSCARD,
    CardFault.NEEDS_SAM: Fault.NEEDS_SAM,
    CardFault.INVALID_DATA: Fault.CARD_INVALID,
}
_IDCARD_FAULTS = {
    IdCardFault.EXPIRED: Fault.IDCARD_EXPIRED,
    IdCardFault.INVALID_DATA: Fault.IDCARD_INVALID,
}
_ECARD_FAULTS = {"expired": Fault.ECARD_EXPIRED, "revoked": Fault.ECARD_REVOKED}


_ID_CARD_HELD = (Screen.MENU, Screen.CONFIRM, Screen.ERROR)


def looks_like_receipt(code: str) -> bool:
    """A scanned URL is checked as a receipt (the runtime fetches only our exact verify URLs, anything else is
    "not one of ours"); any other code is taken as an e-card code. A URL is never sent as an e-card code."""
    return code[:8].lower().startswith(("https://", "http://"))


def transition(s: State, event: object, now: float) -> tuple[State, list]:
    # Expiry first, on every event, so no late event can act on a session that has timed out.
    if s.deadline is not None and now >= s.deadline:
        s, effects = _end(s, now, "timeout")
        if isinstance(event, Tick | Touch):
            return s, effects
        s2, more = transition(s, event, now)
        return s2, effects + more

    if isinstance(event, Result):
        if event.sid != s.sid:
            return s, []  # from an earlier session: its person has gone
        return _on_result(s, event.value, now)

    if isinstance(event, CardInserted):
        s = replace(s, card_present=True)
        if s.screen in (Screen.IDLE, Screen.SCAN):
            s = _new_session(s)
            s, fx = _go_fx(s, Screen.READING, now)
            return s, fx + [ReadCard(s.sid), Speak("reading.title")]
        return s, []

    if isinstance(event, CardRemoved):
        s = replace(s, card_present=False)
        on_card = s.person is None or s.person.credential is Credential.SSCARD_PIN
        if not on_card and s.screen is not Screen.TAKE_CARD:
            return s, []  # someone else's card: the session is not built on it
        if s.screen is Screen.IDLE:
            return s, []
        # Pulling the card ends the session at once, whatever was on screen.
        if s.screen is Screen.TAKE_CARD and s.idcard_present:
            return s, []
        effects = [] if s.screen is Screen.TAKE_CARD else [SessionEnded(s.sid, "card_removed")]
        s, fx = _go_fx(_wiped(s), Screen.IDLE, now)
        return s, effects + fx

    if isinstance(event, IdCardPlaced | IdCardFailed):
        s = replace(s, idcard_present=True)
        if s.screen not in (Screen.IDLE, Screen.SCAN):
            return s, []
        s = _new_session(s)
        if isinstance(event, IdCardFailed):
            return _error(s, _IDCARD_FAULTS.get(event.fault, Fault.IDCARD_UNREADABLE), now, event.fault.value)
        d = event.data
        return _signed_in(s, Person(d.name or d.english_name, d.id_number, Credential.ID_CARD), Level.ID_CARD, now)

    if isinstance(event, IdCardRemoved):
        s = replace(s, idcard_present=False)
        if s.screen is Screen.TAKE_CARD and not s.card_present:
            s, fx = _go_fx(s, Screen.IDLE, now)
            return s, fx
        if s.person is not None and s.person.credential is Credential.ID_CARD and s.screen in _ID_CARD_HELD:
            # The ID card is the credential: lifting it ends the session, so the next person at the
            # screen cannot act for this one. A filing already sent still finishes and prints.
            s, fx = _go_fx(_wiped(s), Screen.IDLE, now)
            return s, [SessionEnded(s.sid, "idcard_removed")] + fx
        return s, []

    if isinstance(event, CodeScanned):
        code = event.text.strip()
        if s.screen not in (Screen.IDLE, Screen.SCAN) or not code:
            return s, []
        s = _new_session(s)
        if looks_like_receipt(code):
            eff = VerifyReceipt(s.sid, code)
        else:
            eff = ResolveECard(s.sid, code)
        s, fx = _go_fx(s, Screen.CHECKING_CODE, now, pending=eff)
        return s, fx + [eff]

    if isinstance(event, Tick):
        if s.remind_at is not None and now >= s.remind_at:
            msg = "take_card.title" if s.card_present else "take_idcard.title"
            return replace(s, remind_at=now + s.settings.take_card_reminder), [Speak(msg)]
        return s, []

    if isinstance(event, ToggleElderMode):
        return _touched(replace(s, elder_mode=not s.elder_mode), now), []
    if isinstance(event, SetLocale):
        if s.screen is Screen.IDLE and event.locale in ("zh_CN", "en"):
            return replace(s, locale=event.locale), []
        return s, []

    if not isinstance(event, _UI_EVENTS):
        return s, []  # device status changes and the like: not a person at the screen
    s = _touched(s, now)
    return _on_ui(s, event, now)


_UI_EVENTS = (Touch, KeyDigit, KeyBackspace, Choose, PrintRequested, Retry, Back, Finish, StartScan, Confirm)


def _touched(s: State, now: float) -> State:
    """A touch extends the time on any screen that has a timeout."""
    key = _SCREEN_TIMEOUT.get(s.screen)
    return replace(s, deadline=now + getattr(s.settings, key)) if key else s


def _on_ui(s: State, e: object, now: float) -> tuple[State, list]:
    if isinstance(e, Touch):
        return s, []
    sc = s.screen
    if sc is Screen.IDLE:
        if isinstance(e, StartScan) and "camera" in s.features:
            s, fx = _go_fx(s, Screen.SCAN, now)
            return s, fx + [Speak("scan.title")]
        return s, []
    if sc is Screen.SCAN:
        if isinstance(e, Back | Finish):
            return _end(s, now, "cancelled")
        return s, []
    if sc is Screen.PIN:
        if isinstance(e, KeyDigit) and len(e.digit) == 1 and e.digit in "0123456789":
            pin = s.pin + e.digit
            if len(pin) < PIN_LENGTH:
                return replace(s, pin=pin), []
            # The sixth digit submits: one step fewer for old hands.
            return _go(s, Screen.CHECKING_PIN, now, pin=""), [VerifyPin(s.sid, pin)]
        if isinstance(e, KeyBackspace):
            return replace(s, pin=s.pin[:-1]), []
        if isinstance(e, Back | Finish):
            return _end(s, now, "cancelled")
        return s, []
    if sc is Screen.MENU:
        if isinstance(e, Choose):
            svc = catalog.get(e.service)
            if svc is None or not catalog.allowed(svc, s.level) or s.person is None:
                return s, []
            if svc.key == "pension_query":
                eff = FetchPension(s.sid, s.person)
                return _go(s, Screen.LOADING, now, service=svc.key, pending=eff), [eff]
            if svc.key == "card_loss":
                return _go(s, Screen.CONFIRM, now, service=svc.key), [Speak("confirm.card_loss.title")]
            return s, []
        if isinstance(e, Finish | Back):
            return _end(s, now, "finished")
        return s, []
    if sc is Screen.CONFIRM:
        if isinstance(e, Confirm) and s.person is not None:
            # The key is made once per filing, so a retry after a lost answer never files it twice.
            eff = ReportCardLoss(s.sid, f"{s.sid}-card_loss-{int(now * 1000)}", s.person)
            return _go(s, Screen.SUBMITTING, now, pending=eff), [eff, Speak("submitting.title")]
        if isinstance(e, Back):
            return _go(s, Screen.MENU, now, service=None), []
        if isinstance(e, Finish):
            return _end(s, now, "finished")
        return s, []
    if sc is Screen.PENSION:
        if isinstance(e, PrintRequested) and s.pension_loaded and s.person is not None:
            eff = IssueReceipt(s.sid, f"{s.sid}-{s.service}-{int(now * 1000)}", s.service or "", s.person)
            return _go(s, Screen.PRINTING, now, pending=eff), [eff, Speak("printing.title")]
        if isinstance(e, Back):
            return _go(s, Screen.MENU, now, pension=None, pension_loaded=False), []
        if isinstance(e, Finish):
            return _end(s, now, "finished")
        return s, []
    if sc in (Screen.SHOW_QR, Screen.RECEIPT_CHECK, Screen.FILED):
        if isinstance(e, Finish | Back):
            return _end(s, now, "finished")
        return s, []
    if sc is Screen.ERROR:
        if isinstance(e, Retry) and s.pending is not None:
            return _retry(s, now)
        if isinstance(e, Retry | Back) and s.fault is Fault.PIN_WRONG:
            return _go(s, Screen.PIN, now, fault=None, pin=""), [Speak("pin.title")]
        if isinstance(e, Back) and s.person is not None and s.level is not Level.NONE:
            return _go(s, Screen.MENU, now, fault=None, pending=None), []
        if isinstance(e, Finish | Back):
            return _end(s, now, "finished")
        return s, []
    if sc is Screen.TAKE_CARD and isinstance(e, Finish):
        return s, [Speak("take_card.title" if s.card_present else "take_idcard.title")]
    return s, []


_WAITING_FOR = {
    IssueReceipt: Screen.PRINTING,
    ReportCardLoss: Screen.SUBMITTING,
    FetchPension: Screen.LOADING,
    ResolveECard: Screen.CHECKING_CODE,
    VerifyReceipt: Screen.CHECKING_CODE,
}


def _retry(s: State, now: float) -> tuple[State, list]:
    eff = s.pending
    return _go(s, _WAITING_FOR[type(eff)], now, fault=None), [eff]


def _on_result(s: State, v: object, now: float) -> tuple[State, list]:
    sc = s.screen
    if isinstance(v, CardReadOk) and sc is Screen.READING:
        return _go(s, Screen.PIN, now, person=Person.from_sscard(v.data), pin=""), [Speak("pin.title")]
    if isinstance(v, CardReadFailed) and sc in (Screen.READING, Screen.CHECKING_PIN):
        if v.fault in (CardFault.REMOVED, CardFault.NO_CARD):
            return _go(_wiped(replace(s, card_present=False)), Screen.IDLE, now), [SessionEnded(s.sid, "card_removed")]
        return _error(_wiped(s), _CARD_FAULTS.get(v.fault, Fault.CARD_UNREADABLE), now, v.fault.value)
    if isinstance(v, PinResult) and sc is Screen.CHECKING_PIN:
        if v.outcome is PinOutcome.OK:
            if s.person is None:  # cannot happen: CHECKING_PIN follows a read card
                return _end(s, now, "card_removed")
            return _signed_in(s, s.person, Level.CARD_PIN, now)
        if v.outcome is PinOutcome.WRONG:
            if v.tries_left == 0:
                return _error(replace(s, tries_left=0), Fault.PIN_BLOCKED, now)
            return _error(replace(s, tries_left=v.tries_left), Fault.PIN_WRONG, now)
        if v.outcome is PinOutcome.BLOCKED:
            return _error(replace(s, tries_left=0), Fault.PIN_BLOCKED, now)
        return _on_result(s, CardReadFailed(v.fault or CardFault.UNREADABLE), now)
    if isinstance(v, ECardResolved) and sc is Screen.CHECKING_CODE:
        return _signed_in(replace(s, pending=None), Person(v.name, v.ssn, Credential.ECARD), Level.STRONG, now)
    if isinstance(v, ECardRejected) and sc is Screen.CHECKING_CODE:
        return _error(replace(s, pending=None), _ECARD_FAULTS.get(v.reason, Fault.ECARD_UNKNOWN), now, v.reason)
    if isinstance(v, ReceiptChecked) and sc is Screen.CHECKING_CODE:
        s = _go(s, Screen.RECEIPT_CHECK, now, checked=v.verification, pending=None)
        genuine = getattr(v.verification, "genuine", False)
        return s, [Speak("receipt_check.genuine" if genuine else "receipt_check.not_genuine")]
    if isinstance(v, PensionLoaded) and sc is Screen.LOADING:
        return _go(s, Screen.PENSION, now, pension=v.status, pension_loaded=True), [Speak("pension.title")]
    if isinstance(v, CardLossFiled) and sc is Screen.SUBMITTING:
        # Filed: the receipt is printed at once, it is the resident's proof.
        s = _go(s, Screen.PRINTING, now, filing_id=v.filing_id, receipt_url=v.verify_url, pending=None)
        eff = PrintReceipt(
            s.sid, "card_loss", s.holder_name_masked, s.holder_id_masked, _card_loss_lines(v), v.verify_url,
        )
        return s, [eff, Speak("printing.title")]
    if isinstance(v, BackendFailed) and sc in _WAITING_FOR.values():
        if v.kind is BackendFailureKind.NOT_FOUND and sc is Screen.LOADING:
            # No pension record is an answer, not a fault: the pension screen says so in plain words.
            return _go(s, Screen.PENSION, now, pension=None, pension_loaded=True), [Speak("pension.none")]
        if v.kind is BackendFailureKind.NOT_FOUND and sc is Screen.SUBMITTING:
            return _error(s, Fault.NO_CARD_ON_FILE, now)
        # Busy (rate_limited) and a refused token also end here: the busy screen offers Retry, and the runtime
        # opens a fresh backend session for the retry.
        offline = v.kind in (BackendFailureKind.OFFLINE, BackendFailureKind.TIMEOUT)
        return _error(s, Fault.BACKEND_OFFLINE if offline else Fault.BACKEND_ERROR, now, v.kind.value)
    if isinstance(v, ReceiptIssued) and sc is Screen.PRINTING:
        eff = PrintReceipt(
            s.sid, s.service or "", s.holder_name_masked, s.holder_id_masked, v.lines, v.verify_url,
        )
        return replace(s, receipt_url=v.verify_url, pending=None), [eff]
    if isinstance(v, PrintResult) and sc is Screen.PRINTING:
        if v.outcome is PrintOutcome.PRINTED:
            if s.filing_id:
                return _go(s, Screen.FILED, now), [Speak("filed.title")]
            return _end(s, now, "printed")
        s = _go(s, Screen.SHOW_QR, now, fault=Fault.PRINTER, fault_detail=v.outcome.value)
        return s, [Speak("show_qr.title")]
    return s, []


def _card_loss_lines(v: CardLossFiled) -> tuple[tuple[str, str], ...]:
    """The backend's lines as given (it vouches for them); the filing number leads, for the window clerk."""
    lines = tuple(v.lines)
    if not any(label == "受理编号" for label, _ in lines):
        lines = (("受理编号", v.filing_id),) + lines
    return lines

