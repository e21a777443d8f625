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

import datetime as dt
import enum
import hashlib
import re
from dataclasses import dataclass, field, replace
from dataclasses import field as dc_field  # for classes with an attribute called `field`

from api.enums import Credential, Handling, Satisfaction
from api.models import Filing, Pension, Verification
from api.privacy import mask_id, mask_name
from api.workdays import add_working_days
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
from kiosk import forms as F
from kiosk.catalog import Level
from kiosk.speech import grouped_phone, spoken_amount, spoken_date, spoken_digits, spoken_number

PIN_LENGTH = 6
HELP_INTERVAL = 120.0  # seconds: at most one help request per terminal in this time (the staff were told)
HELP_STALE = 600.0  # a help request with no answer after this long is taken as lost (the client gives up far sooner)


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
    CONFIRM = "confirm"  # card loss without a catalog: a filing is only sent after the person confirms it
    SUBMITTING = "submitting"
    FILED = "filed"
    SERVICE_INFO = "service_info"  # 八公开: what the station publishes about a service, before it starts
    FORM = "form"  # one question a screen
    REVIEW = "review"  # every answer, each tappable to change, then 确认提交
    RATING = "rating"  # 满意 / 基本满意 / 不满意 after a filing
    MY_FILINGS = "my_filings"  # 我的办件


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
class Repeat:
    """再听一遍: say the current screen's last prompt again."""


@dataclass(frozen=True)
class AskHelp:
    """请工作人员帮助: show the station's volunteers and phone numbers, say them, and tell the backend."""


@dataclass(frozen=True)
class ConfirmShrink:
    """The answer to 把字变小吗？ (turning elder mode off asks first)."""

    yes: bool


@dataclass(frozen=True)
class Tick:
    """Sent every second by the runtime so timeouts fire with no other event."""


@dataclass(frozen=True)
class Start:
    """开始办理 on a service's page."""


@dataclass(frozen=True)
class Answer:
    """The answer to the question on screen (a choice's value, yes/no, a picked option)."""

    value: object = field(repr=False)


@dataclass(frozen=True)
class Next:
    """下一步: take what is on the question's screen (typed digits, the picked date, the photo) as its answer."""


@dataclass(frozen=True)
class Edit:
    """A tapped row of the review screen: change that answer, then come back to the review."""

    field: str


@dataclass(frozen=True)
class Step:
    """The date picker's steppers: move year, month or day by delta."""

    part: str  # year | month | day
    delta: int


@dataclass(frozen=True)
class Letter:
    """A pinyin initial tapped on a pick list ("" clears them all)."""

    letter: str


@dataclass(frozen=True)
class Attach:
    """Bytes for an attachment question: the signature pad's PNG, or a capture screen's accepted photo."""

    data: bytes = field(repr=False)
    media_type: str


@dataclass(frozen=True)
class CaptureNow:
    """拍照 on the document camera's screen."""


@dataclass(frozen=True)
class Retake:
    """重拍: drop the photo taken and show the live camera again."""


@dataclass(frozen=True)
class Rate:
    satisfaction: str  # api.enums.Satisfaction


@dataclass(frozen=True)
class RateReasons:
    reasons: tuple[str, ...]  # api.enums.RatingReason values


@dataclass(frozen=True)
class CatalogLoaded:
    """The services the backend (or the cache) offers, each compiled by kiosk.forms (bad ones already hidden)."""

    services: tuple[F.ServiceForm, ...]


@dataclass(frozen=True)
class WallTime:
    """The wall clock (aware datetime), posted by the runtime at start and now and then: the session's `now` is
    monotonic, but receipts, local numbers and the date picker need the calendar."""

    at: dt.datetime


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
class Captured:
    """A JPEG from the document camera, or a face photo the face guide took."""

    field: str
    data: bytes = dc_field(repr=False)
    media_type: str = "image/jpeg"


@dataclass(frozen=True)
class FaceHint:
    hint: str  # look_at_camera | closer | farther | centre | hold_still | one_face_only


@dataclass(frozen=True)
class CaptureFailed:
    """The camera gave no picture (unplugged, driver failure, a frame that would not encode): the screen says so
    and offers 重拍; the form and its answers stay."""

    field: str
    reason: str  # camera | encode


@dataclass(frozen=True)
class FilingSaved:
    """The filing is in the outbox (durable). queued: the backend has not confirmed it yet (filing is None)."""

    local_number: str
    queued: bool
    filing: Filing | None = field(default=None, repr=False)
    lines: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FilingRefused:
    """The backend refused the filing's answers (422): the fields it named go back to the resident as words."""

    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilingRow:
    local_number: str | None
    filing_id: str | None
    service: str
    title: str
    status: str  # api.enums.Progress value
    reason: str | None = None
    due_date: dt.date | None = None
    queued: bool = False  # still in this terminal's outbox (待上传)


@dataclass(frozen=True)
class MyFilingsLoaded:
    rows: tuple[FilingRow, ...]
    offline: bool = False  # the backend could not be asked: only the rows still in the outbox


@dataclass(frozen=True)
class HelpRequested:
    """The backend's answer to RequestHelp: recorded (ok) or not reached (the panel says to phone)."""

    ok: bool


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
    title: str = ""  # a catalog service's own title (built-in services have a message id service.<key>)


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
    """Voice guidance: the message id of the screen's spoken prompt, and the values it names, already in words
    (kiosk.speech); the runtime speaks tr(locale, msgid, **dict(params))."""

    msgid: str
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class CaptureStill:
    sid: int
    field: str


@dataclass(frozen=True)
class FaceWatch:
    """Face guidance on (a face question on screen, no photo yet) or off."""

    sid: int
    field: str
    on: bool


@dataclass(frozen=True)
class KeepAttachment:
    """The runtime keeps the bytes per sid, in memory, until SubmitFiling takes them or SessionEnded wipes them."""

    sid: int
    digest: str
    data: bytes = field(repr=False)
    media_type: str = "image/jpeg"


@dataclass(frozen=True)
class SubmitFiling:
    """Write the confirmed filing to the outbox (durable), then send it: the answer is FilingSaved.
    The local number and key are made once per confirmation, so a retry never files it twice."""

    sid: int
    service: str
    local_number: str
    key: str
    person: Person = field(repr=False)
    answers: tuple[tuple[str, object], ...] = field(repr=False)
    online_only: bool
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class SubmitRating:
    sid: int
    service: str
    filing_ref: str | None
    satisfaction: str
    reasons: tuple[str, ...]
    key: str


@dataclass(frozen=True)
class FetchMyFilings:
    sid: int
    person: Person = field(repr=False)


@dataclass(frozen=True)
class RequestHelp:
    """Tell the backend that someone at this terminal asked for a person's help: which screen, nothing personal."""

    sid: int
    screen: str  # a Screen value


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
    """Timeouts in seconds as configured; elder mode multiplies each by elder_factor (old hands and eyes take
    longer), read at every use so switching the mode changes them at once."""

    inactivity: float = 60.0
    pin: float = 45.0
    warn: float = 15.0
    take_card_reminder: float = 15.0
    attract: float = 75.0  # idle: the attract prompt's interval while nobody is there (0 = off)
    elder_factor: float = 2.0


@dataclass(frozen=True)
class HelpDesk:
    """Who helps at this station ([help] in the config): (name, phone) per volunteer, and the station's phone."""

    volunteers: tuple[tuple[str, str], ...] = ()
    station_phone: str = ""


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
    # filings
    services: tuple[F.ServiceForm, ...] = field(default=(), repr=False)  # the catalog (CatalogLoaded)
    form: F.ServiceForm | None = field(default=None, repr=False)  # the service being filled in
    answers: tuple[tuple[str, object], ...] = field(default=(), repr=False)
    q_index: int = 0  # index into form.asked
    draft: object = field(default=None, repr=False)  # typed digits, picked date, pinyin letters, a photo's digest
    form_error: str | None = None  # message id of the refused answer on screen
    editing: bool = False  # came from the review screen: Next goes back there
    hint: str | None = None  # the face guide's last hint
    capture_failed: bool = False  # the camera gave no picture for the question on screen: 重拍 tries again
    face_on: str | None = None  # the face question the face guide watches for (device state: survives a wipe)
    local_number: str = ""
    queued: bool = False
    due: dt.date | None = None
    print_failed: bool = False
    rating: str | None = None  # dissatisfied: the reason buttons are showing
    my_filings: tuple[FilingRow, ...] = field(default=(), repr=False)
    my_filings_offline: bool = False
    # the calendar and the number source (see WallTime, _unique)
    wall: dt.datetime | None = None
    wall_mono: float = 0.0
    seed: bytes = field(default=b"", repr=False)
    counter: int = 0
    # elders first: the voice, help and the large-text question
    last_speak: Speak | None = field(default=None, repr=False)  # what 再听一遍 says again; wiped at session end
    countdown_said: bool = False  # the countdown warning is spoken once per appearance
    attract_at: float | None = None  # idle: when the attract prompt is due
    help_open: bool = False  # the 请工作人员帮助 panel is showing
    help_sent: str = ""  # "" | sending | sent | offline: the backend's answer to the help request
    confirm_shrink: bool = False  # 把字变小吗？ is asked
    helpdesk: HelpDesk = HelpDesk()
    # what the terminal is configured with: a session's end goes back to them (the next resident starts afresh)
    default_locale: str = "zh_CN"
    default_elder_mode: bool = True
    # the terminal's last help request (not personal, so it survives a session's wipe): when it was sent, whether
    # it is still on its way, and whether the backend recorded it; at most one a HELP_INTERVAL, never two at once
    help_at: float | None = None
    help_inflight: bool = False
    help_recorded: bool = False

    @property
    def holder_name_masked(self) -> str:
        return mask_name(self.person.name) if self.person else ""

    @property
    def holder_id_masked(self) -> str:
        return mask_id(self.person.id_number) if self.person else ""

    def remaining(self, now: float) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - now)

    def limit(self, key: str) -> float:
        """A timeout of Settings (inactivity, pin, warn, take_card_reminder) as it applies now: doubled in elder
        mode (by elder_factor)."""
        value = float(getattr(self.settings, key))
        return value * self.settings.elder_factor if self.elder_mode else value

    def countdown(self, now: float) -> int | None:
        """Seconds to show in the warning (还有 N 秒返回首页), or None when no warning is due."""
        r = self.remaining(now)
        if r is None or r > self.limit("warn"):
            return None
        return int(r + 0.999)


def initial_state(
    settings: Settings | None = None, locale: str = "zh_CN", elder_mode: bool = True,
    features: frozenset[str] = frozenset({"idcard", "scan", "camera"}), seed: bytes | None = None,
    helpdesk: HelpDesk | None = None,
) -> State:
    """seed: the source of local numbers and idempotency keys; random unless a test fixes it (so two terminals,
    or two boots of one, never make the same numbers)."""
    import os

    settings = settings or Settings()
    return State(
        settings=settings, locale=locale, elder_mode=elder_mode, features=features,
        default_locale=locale, default_elder_mode=elder_mode,
        seed=os.urandom(16) if seed is None else seed, helpdesk=helpdesk or HelpDesk(),
        # the idle screen greets once at start too (then at its gentle interval): every screen has its prompt
        attract_at=0.0 if settings.attract > 0 else None,
    )


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
    Screen.SERVICE_INFO: "inactivity",
    Screen.FORM: "inactivity",
    Screen.REVIEW: "inactivity",
    Screen.RATING: "inactivity",
    Screen.MY_FILINGS: "inactivity",
}


def _defaults(s: State) -> State:
    """The configured language and type size (what the next person starts with)."""
    return replace(s, locale=s.default_locale, elder_mode=s.default_elder_mode)


def _go(s: State, screen: Screen, now: float, **changes) -> State:
    if screen is Screen.IDLE and s.screen not in (Screen.IDLE, Screen.SCAN):
        # back home after a session: the configured type size and language, not the last resident's choice
        # (SCAN is entered from the idle screen itself, before any session: a choice made there is still wanted)
        changes = {"locale": s.default_locale, "elder_mode": s.default_elder_mode} | changes
    s = replace(s, screen=screen, **changes)
    key = _SCREEN_TIMEOUT.get(screen)
    deadline = now + s.limit(key) if key else None
    remind = now + s.limit("take_card_reminder") if screen is Screen.TAKE_CARD else None
    attract = now + s.settings.attract if screen is Screen.IDLE and s.settings.attract > 0 else None
    return replace(s, deadline=deadline, remind_at=remind, countdown_said=False, attract_at=attract)


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
        form=None, answers=(), q_index=0, draft=None, form_error=None, editing=False, hint=None, capture_failed=False,
        local_number="",
        queued=False, due=None, print_failed=False, rating=None, my_filings=(), my_filings_offline=False,
        last_speak=None, help_open=False, help_sent="", confirm_shrink=False,
    )


def _end(s: State, now: float, reason: str) -> tuple[State, list]:
    """End the session: wipe, then idle, or the take-your-card reminder while a card is still there."""
    effects: list = [SessionEnded(s.sid, reason)] if s.sid and s.screen is not Screen.IDLE else []
    if reason == "timeout":  # nobody there any more, even on the scan screen: the next person starts afresh
        s = _defaults(s)
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
    return s, fx + [_error_voice(s, fault)]


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


_ID_CARD_HELD = (
    Screen.MENU, Screen.CONFIRM, Screen.ERROR, Screen.SERVICE_INFO, Screen.FORM, Screen.REVIEW, Screen.MY_FILINGS,
)


def looks_like_receipt(code: str) -> bool:
    """A scanned URL is checked as a receipt (the runtime fetches only our exact verify URLs, anything else is
    "not one of ours"); any other code is taken as an e-card code. A URL is never sent as an e-card code."""
    return code[:8].lower().startswith(("https://", "http://"))


def transition(s: State, event: object, now: float) -> tuple[State, list]:
    s2, effects = _transition(s, event, now)
    s2, effects = _voiced(s, s2, list(effects))
    # The face guide watches exactly while a face question without a photo is on screen: whatever ended it
    # (an answer, Back, a timeout, a card pulled out), the camera's face watching stops with it.
    want = _face_field(s2)
    if want != s.face_on:
        effects = list(effects)
        if s.face_on is not None:
            effects.append(FaceWatch(s.sid, s.face_on, False))
        if want is not None:
            effects.append(FaceWatch(s2.sid, want, True))
        s2 = replace(s2, face_on=want)
    elif s2.face_on != want:
        s2 = replace(s2, face_on=want)
    return s2, effects


# Prompts that are not the screen's own: 再听一遍 says the screen's prompt, not these.
_NOT_REPEATED = frozenset({"countdown.voice", "idle.attract", "shrink.voice", "elder.on.voice", "shrink.done",
                           "help.voice", "help.voice.none", "help.offline"})


def _voiced(before: State, s: State, effects: list) -> tuple[State, list]:
    """Every screen speaks when it appears: a transition onto a new screen (or a new session) that said nothing
    gets the screen's own prompt. The last prompt is kept for 再听一遍; a session's end forgets it."""
    speaks = [e for e in effects if isinstance(e, Speak)]
    if (s.screen is not before.screen or s.sid != before.sid) and not speaks:
        extra = screen_voice(s)
        effects.append(extra)
        speaks = [extra]
    # a face hint ("请不要动") is for that moment only: 再听一遍 says the question
    own = [e for e in speaks if e.msgid not in _NOT_REPEATED and not e.msgid.startswith("face.hint.")]
    if own:
        s = replace(s, last_speak=own[-1])
    elif any(isinstance(e, SessionEnded) for e in effects):
        s = replace(s, last_speak=None)
    return s, effects


_SCREEN_VOICE = {
    Screen.IDLE: "idle.voice",
    Screen.READING: "reading.title",
    Screen.PIN: "pin.title",
    Screen.CHECKING_PIN: "checking_pin.title",
    Screen.MENU: "menu.title",
    Screen.LOADING: "loading.title",
    Screen.PENSION: "pension.title",
    Screen.PRINTING: "printing.title",
    Screen.SHOW_QR: "show_qr.title",
    Screen.SCAN: "scan.title",
    Screen.CHECKING_CODE: "checking_code.title",
    Screen.CONFIRM: "confirm.card_loss.title",
    Screen.SUBMITTING: "submitting.title",
    Screen.FILED: "filed.title",
    Screen.SERVICE_INFO: "service_info.start",
    Screen.FORM: "review.title",
    Screen.REVIEW: "review.voice",
    Screen.RATING: "rating.title",
    Screen.MY_FILINGS: "my_filings.title",
}


def screen_voice(s: State) -> Speak:
    """The prompt of the screen on show, with the values it names in words (the fallback of 再听一遍 too)."""
    sc = s.screen
    if sc is Screen.TAKE_CARD:
        return Speak("take_card.title" if s.card_present else "take_idcard.title")
    if sc is Screen.ERROR:
        return _error_voice(s, s.fault or Fault.BACKEND_ERROR)
    if sc is Screen.PENSION and s.pension_loaded:
        return _pension_voice(s)
    if sc is Screen.RECEIPT_CHECK:
        return _verdict_voice(s)
    if sc is Screen.FILED and s.local_number:
        return _filed(s)[1][0]
    if sc is Screen.FILED and s.filing_id:
        return Speak("filed.voice", (("number", _digits(s, s.filing_id)),))
    if sc is Screen.SERVICE_INFO and s.form is not None:
        return _service_voice(s, s.form)
    if sc is Screen.FORM and (q := _question(s)) is not None:
        return _question_voice(s, q)
    if sc is Screen.MY_FILINGS:
        return _my_filings_voice(s)
    return Speak(_SCREEN_VOICE.get(sc, "idle.voice"))


def _my_filings_voice(s: State) -> Speak:
    """我的办件, said as the screen says it: offline, only this terminal's unsent filings are known, so "none" would
    be wrong (the backend may have many)."""
    n = len(s.my_filings)
    if not n:
        return Speak("my_filings.offline.none" if s.my_filings_offline else "my_filings.none")
    params = (("n", _count(s, n)), ("rows", _filing_rows_voice(s)))
    return Speak("my_filings.offline.voice" if s.my_filings_offline else "my_filings.voice", params)


MY_FILINGS_SAID = 3  # the newest few are read out (what and where it stands); the rest are on the screen


def _filing_rows_voice(s: State) -> str:
    """Each of the newest filings as the screen shows it, in words: 就业登记：已受理，二〇二六年十二月八日前办结.
    Someone who cannot read the list still learns where their filings stand."""
    from kiosk.i18n import tr

    loc = s.locale
    said = []
    for r in s.my_filings[:MY_FILINGS_SAID]:
        status = tr(loc, "progress.queued") if r.queued else tr(loc, f"progress.{r.status}")
        if r.status == "returned" and (reason := _in_locale(s, r.reason or "")):
            status = tr(loc, "my_filings.reason", status=status, reason=reason)
        elif r.due_date is not None and r.status not in ("done", "returned"):
            status = tr(loc, "my_filings.due", status=status, date=_day(s, r.due_date))
        title = _in_locale(s, r.title)
        said.append(tr(loc, "my_filings.row.voice", title=title, status=status) if title else status)
    more = len(s.my_filings) - len(said)
    sep = "；" if loc == "zh_CN" else "; "
    tail = tr(loc, "my_filings.more.voice", n=_count(s, more)) if more > 0 else ""
    return sep.join(said) + ("。" if loc == "zh_CN" else ". ") + tail


def _phone(s: State, phone: str) -> str:
    """A phone number to dial: digit by digit, a mobile in its 3-4-4 groups (138 0000 1111), a landline at its hyphen."""
    return _digits(s, grouped_phone(phone))


def _digits(s: State, code: str) -> str:
    """A number read symbol by symbol; a separator (hyphen, space, slash) is a pause, as in spoken_digits."""
    if s.locale == "zh_CN":
        return spoken_digits(code)
    groups = re.split(r"[^0-9A-Za-z]+", code)
    return ", ".join(" ".join(g) for g in groups if g)


def _money(s: State, amount) -> str:
    if s.locale == "zh_CN":
        return spoken_amount(amount)
    return f"{amount} yuan"


def _day(s: State, d: dt.date) -> str:
    """A date in words: 二〇二七年三月三十一日 / March 31, 2027 (an ISO date is read "dash")."""
    return spoken_date(d) if s.locale == "zh_CN" else f"{d:%B} {d.day}, {d.year}"


def _error_voice(s: State, fault: Fault) -> Speak:
    if fault is Fault.PIN_WRONG and s.tries_left == 1:
        return Speak("error.pin_wrong.last.voice")
    if fault is Fault.PIN_WRONG and s.tries_left is not None:
        return Speak("error.pin_wrong.voice", (("n", _count(s, s.tries_left)),))
    return Speak(f"error.{fault.value}.title")


def _pension_voice(s: State) -> Speak:
    p = s.pension
    if p is None:
        return Speak("pension.none")
    params = [("balance", _money(s, p.account_balance)), ("years", _count(s, p.years_contributed))]
    receiving = p.receiving and p.monthly_amount is not None
    if receiving:
        params.append(("amount", _money(s, p.monthly_amount)))
    msgid = "pension.voice.receiving" if receiving else "pension.voice.saving"
    if p.certification_status and p.certification_due:
        params += [("status", p.certification_status), ("due", _day(s, p.certification_due))]
        msgid += ".cert"
    return Speak(msgid, tuple(params))


def _verdict_voice(s: State) -> Speak:
    """The verdict, then (genuine) what the receipt is for, the day and where a filing stands, in words."""
    from kiosk.i18n import tr

    v = s.checked
    if v is None or not v.genuine:
        return Speak("receipt_check.forged.voice")
    at = v.received_at or v.created_at
    service = _in_locale(s, v.title or "")  # the backend's titles are Chinese: the English voice cannot read them
    if not service or at is None:
        return Speak("receipt_check.genuine.voice")
    progress = ""
    if v.filing_status is not None:
        progress = tr(s.locale, "receipt_check.progress.voice", status=tr(s.locale, f"progress.{v.filing_status.value}"))
    return Speak("receipt_check.genuine.details.voice",
                 (("service", service), ("date", _day(s, at.date())), ("progress", progress)))


def _help_voice(s: State) -> Speak:
    """The volunteers and the station's phone, read out: numbers digit by digit, so they can be dialled."""
    from kiosk.i18n import tr

    loc = s.locale
    desk = s.helpdesk
    parts = [tr(loc, "help.contact.voice", name=n, phone=_phone(s, p)) for n, p in desk.volunteers]
    if desk.station_phone:
        parts.append(tr(loc, "help.station.voice", phone=_phone(s, desk.station_phone)))
    if not parts:
        return Speak("help.voice.none")
    return Speak("help.voice", (("contacts", "；".join(parts) if loc == "zh_CN" else "; ".join(parts)),))


def _on_elder(s: State, e: object, now: float) -> tuple[State, list]:
    """Repeat, AskHelp, ConfirmShrink and ToggleElderMode, and what the open help panel or the large-text
    question let through (they cover the screen: only their own buttons act)."""
    if isinstance(e, Repeat):
        if s.confirm_shrink:
            return s, [Speak("shrink.voice")]
        if s.help_open:
            return s, [_help_voice(s)]
        return s, [s.last_speak or screen_voice(s)]
    if isinstance(e, ToggleElderMode):
        if s.help_open:
            return s, []  # the help panel covers the screen: a question behind it would pop up after closing
        if s.elder_mode:
            return replace(s, confirm_shrink=True), [Speak("shrink.voice")]
        return _touched(replace(s, elder_mode=True, confirm_shrink=False), now), [Speak("elder.on.voice")]
    if isinstance(e, ConfirmShrink):
        if not s.confirm_shrink:
            return s, []
        if e.yes:
            return _touched(replace(s, elder_mode=False, confirm_shrink=False), now), [Speak("shrink.done")]
        return replace(s, confirm_shrink=False), []
    if isinstance(e, AskHelp):
        if s.help_open:
            return s, [_help_voice(s)]
        s = replace(s, help_open=True, confirm_shrink=False)
        if s.help_sent == "sent":
            return s, [_help_voice(s)]  # told already in this session: the staff know
        if s.help_inflight and s.help_at is not None and now - s.help_at < HELP_STALE:
            return replace(s, help_sent="sending"), [_help_voice(s)]  # its answer will show here too
        if s.help_at is not None and now - s.help_at < HELP_INTERVAL:
            # asked a moment ago (maybe by the last resident): say what came of it, do not ask again
            return replace(s, help_sent="sent" if s.help_recorded else "offline"), [_help_voice(s)]
        s = replace(s, help_sent="sending", help_at=now, help_inflight=True, help_recorded=False)
        return s, [RequestHelp(s.sid, s.screen.value), _help_voice(s)]
    return s, []


def _help_answered(s: State, v: HelpRequested) -> tuple[State, list]:
    """The backend's answer to the terminal's help request, whichever session sent it (nothing personal in it):
    it frees the next request, and a panel waiting on it shows it."""
    s = replace(s, help_inflight=False, help_recorded=v.ok)
    if s.help_sent != "sending":
        return s, []
    s = replace(s, help_sent="sent" if v.ok else "offline")
    # the notice cuts the numbers being read: say them again after it, so the person can still dial
    return s, ([] if v.ok or not s.help_open else [Speak("help.offline"), _help_voice(s)])


def _count(s: State, n: int) -> str:
    return spoken_number(n, counting=True) if s.locale == "zh_CN" else str(n)


def capture_phase(s: State) -> str | None:
    """What a camera question on screen shows: "live" (the preview), "review" (the picture taken, to use or
    retake), "failed" (the camera gave nothing); None when no document or face question is on screen."""
    q = _question(s) if s.screen is Screen.FORM else None
    if q is None or q.widget not in ("document", "face"):
        return None
    if s.draft is not None:
        return "review"
    return "failed" if s.capture_failed else "live"


def _face_field(s: State) -> str | None:
    if s.screen is not Screen.FORM or s.draft is not None or s.capture_failed:
        return None  # a failed camera is not watched until 重拍
    q = _question(s)
    return q.field if q is not None and q.widget == "face" else None


def _transition(s: State, event: object, now: float) -> tuple[State, list]:
    # Expiry first, on every event, so no late event can act on a session that has timed out.
    if s.deadline is not None and now >= s.deadline:
        s, effects = _end(s, now, "timeout")
        if isinstance(event, Tick | Touch):
            return s, effects
        s2, more = _transition(s, event, now)
        return s2, effects + more

    if isinstance(event, WallTime):
        return replace(s, wall=event.at, wall_mono=now), []
    if isinstance(event, CatalogLoaded):
        return replace(s, services=tuple(event.services)), []

    if isinstance(event, Result):
        if isinstance(event.value, HelpRequested):
            return _help_answered(s, event.value)
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
        return _tick(s, now)

    if isinstance(event, Repeat | AskHelp | ConfirmShrink | ToggleElderMode):
        return _on_elder(_touched(s, now), event, now)
    if s.help_open and isinstance(event, _UI_EVENTS):
        s = _touched(s, now)
        if isinstance(event, Back):
            # closes the panel only; on the idle screen nobody's session remembers it: the next press is news
            return replace(s, help_open=False, help_sent="" if s.screen is Screen.IDLE else s.help_sent), []
        return s, []  # the panel covers the screen: its buttons are not there
    if s.confirm_shrink and isinstance(event, _UI_EVENTS):
        s = _touched(s, now)
        return (replace(s, confirm_shrink=False), []) if isinstance(event, Back) else (s, [])
    if isinstance(event, SetLocale):
        if s.screen is Screen.IDLE and event.locale in ("zh_CN", "en"):
            return replace(s, locale=event.locale), []
        return s, []

    if not isinstance(event, _UI_EVENTS):
        return s, []  # device status changes and the like: not a person at the screen
    s = _touched(s, now)
    return _on_ui(s, event, now)


def _tick(s: State, now: float) -> tuple[State, list]:
    if s.remind_at is not None and now >= s.remind_at:
        msg = "take_card.title" if s.card_present else "take_idcard.title"
        return replace(s, remind_at=now + s.limit("take_card_reminder")), [Speak(msg)]
    n = s.countdown(now)
    if n is not None and not s.countdown_said:
        return replace(s, countdown_said=True), [Speak("countdown.voice", (("n", _count(s, n)),))]
    if s.screen is Screen.IDLE:
        every = s.settings.attract
        there = s.card_present or s.idcard_present or s.help_open or s.confirm_shrink
        if every <= 0 or there:
            return (replace(s, attract_at=None), []) if s.attract_at is not None else (s, [])
        if s.attract_at is None:
            return replace(s, attract_at=now + every), []
        if now >= s.attract_at:
            # a whole interval untouched: whoever switched the language or the type size has gone
            return replace(_defaults(s), attract_at=now + every), [Speak("idle.attract")]
    return s, []


_UI_EVENTS = (
    Touch, KeyDigit, KeyBackspace, Choose, PrintRequested, Retry, Back, Finish, StartScan, Confirm, Start, Answer,
    Next, Edit, Step, Letter, Attach, CaptureNow, Retake, Rate, RateReasons,
)


def _touched(s: State, now: float) -> State:
    """A touch extends the time on any screen that has a timeout (the countdown goes, and may be said again);
    on the idle screen someone is there: the attract prompt waits a full interval."""
    key = _SCREEN_TIMEOUT.get(s.screen)
    if key:
        return replace(s, deadline=now + s.limit(key), countdown_said=False)
    if s.screen is Screen.IDLE and s.settings.attract > 0:
        return replace(s, attract_at=now + s.settings.attract)
    return s


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
        if isinstance(e, Choose) and s.person is not None:
            if e.service == catalog.MY_FILINGS:
                eff = FetchMyFilings(s.sid, s.person)
                s, fx = _go_fx(s, Screen.LOADING, now, service=e.service, pending=eff)
                return s, fx + [eff, Speak("loading.title")]
            form = _catalog_form(s, e.service)
            if form is not None:
                if s.level < form.level:
                    return s, []
                return _service_info(s, form, now)
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
    if sc is Screen.FILED and s.local_number:
        if isinstance(e, Finish | Back | Next):
            s = _go(s, Screen.RATING, now, rating=None)
            return s, [Speak("rating.title")]
        return s, []
    if sc in (Screen.SHOW_QR, Screen.RECEIPT_CHECK, Screen.FILED):
        if isinstance(e, Finish | Back):
            return _end(s, now, "finished")
        return s, []
    if sc in (Screen.SERVICE_INFO, Screen.FORM, Screen.REVIEW):
        return _on_form_ui(s, e, now)
    if sc is Screen.RATING:
        return _on_rating(s, e, now)
    if sc is Screen.MY_FILINGS:
        if isinstance(e, Back):
            s = _go(s, Screen.MENU, now, service=None, my_filings=(), my_filings_offline=False)
            return s, [Speak("menu.title")]
        if isinstance(e, Finish):
            return _end(s, now, "finished")
        return s, []
    if sc is Screen.ERROR:
        if isinstance(e, Retry) and s.pending is not None:
            return _retry(s, now)
        if isinstance(e, Back) and isinstance(s.pending, SubmitFiling) and s.form is not None:
            # not saved: back to the answers (a new confirmation is a new filing with new numbers)
            return _review(replace(s, pending=None, fault=None, fault_detail=""), now)
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
    SubmitFiling: Screen.SUBMITTING,
    FetchMyFilings: Screen.LOADING,
    FetchPension: Screen.LOADING,
    ResolveECard: Screen.CHECKING_CODE,
    VerifyReceipt: Screen.CHECKING_CODE,
}


def _retry(s: State, now: float) -> tuple[State, list]:
    eff = s.pending  # the same effect: a filing keeps its local number and idempotency key
    return _go(s, _WAITING_FOR[type(eff)], now, fault=None), [eff]


def _on_result(s: State, v: object, now: float) -> tuple[State, list]:
    sc = s.screen
    if isinstance(v, Captured | FaceHint | CaptureFailed) and sc is Screen.FORM:
        return _on_capture(s, v, now)
    if isinstance(v, FilingSaved) and sc is Screen.SUBMITTING and isinstance(s.pending, SubmitFiling):
        return _filing_saved(s, v, now)
    if isinstance(v, FilingRefused) and sc is Screen.SUBMITTING and isinstance(s.pending, SubmitFiling):
        return _filing_refused(s, v, now)
    if isinstance(v, MyFilingsLoaded) and sc is Screen.LOADING and isinstance(s.pending, FetchMyFilings):
        s = _go(s, Screen.MY_FILINGS, now, pending=None, my_filings=tuple(v.rows), my_filings_offline=v.offline)
        return s, [_my_filings_voice(s)]
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
        return s, [_verdict_voice(s)]
    if isinstance(v, PensionLoaded) and sc is Screen.LOADING:
        s = _go(s, Screen.PENSION, now, pension=v.status, pension_loaded=True)
        return s, [_pension_voice(s)]
    if isinstance(v, CardLossFiled) and sc is Screen.SUBMITTING:
        # Filed: the receipt is printed at once, it is the resident's proof.
        s = _go(s, Screen.PRINTING, now, filing_id=v.filing_id, receipt_url=v.verify_url, pending=None)
        eff = PrintReceipt(
            s.sid, "card_loss", s.holder_name_masked, s.holder_id_masked, _card_loss_lines(v), v.verify_url,
        )
        return s, [eff, Speak("printing.title")]
    if isinstance(v, BackendFailed) and sc in _WAITING_FOR.values():
        if v.kind is BackendFailureKind.NOT_FOUND and isinstance(s.pending, FetchMyFilings):
            return _on_result(s, MyFilingsLoaded(()), now)
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
    if isinstance(v, PrintResult) and sc is Screen.PRINTING and s.local_number:
        # A filing is in the outbox whatever the printer does: the FILED screen shows its number either way.
        printed = v.outcome is PrintOutcome.PRINTED
        return _filed(_go(s, Screen.FILED, now, print_failed=not printed, fault=None if printed else Fault.PRINTER))
    if isinstance(v, PrintResult) and sc is Screen.PRINTING:
        if v.outcome is PrintOutcome.PRINTED:
            if s.filing_id:
                return _go(s, Screen.FILED, now), [Speak("filed.voice", (("number", _digits(s, s.filing_id)),))]
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



# ------------------------------------------------------------------ filings: catalog services and their forms


def _catalog_form(s: State, key: str) -> F.ServiceForm | None:
    for f in s.services:
        if f.key == key:
            return f
    return None


def _wall_now(s: State, now: float) -> dt.datetime:
    if s.wall is None:
        # no WallTime yet (the runtime posts it at start): the machine's local time, the one impure fallback
        return dt.datetime.now().astimezone()
    return s.wall + dt.timedelta(seconds=now - s.wall_mono)


def today(s: State, now: float) -> dt.date:
    return _wall_now(s, now).date()


_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's: no I, L, O, U to misread


def _unique(s: State, what: str) -> tuple[State, bytes]:
    """Deterministic for a given seed (tests), unique per terminal and boot (the seed is random in service)."""
    h = hashlib.sha256(s.seed + f"|{what}|{s.sid}|{s.counter}".encode()).digest()
    return replace(s, counter=s.counter + 1), h


def _local_number(day: dt.date, h: bytes) -> str:
    n = int.from_bytes(h[:8], "big")
    tail = "".join(_B32[(n >> (5 * i)) & 31] for i in range(6))
    return f"L{day:%Y%m%d}-{tail}"


def _service_info(s: State, form: F.ServiceForm, now: float) -> tuple[State, list]:
    s = _go(s, Screen.SERVICE_INFO, now, service=form.key, form=form, answers=(), q_index=0, draft=None,
            form_error=None, editing=False, hint=None, capture_failed=False)
    return s, [_service_voice(s, form)]


def _service_voice(s: State, form: F.ServiceForm) -> Speak:
    """The service page (八公开) read out as one prompt: what it is, the materials, the time limit, the fee and
    the phones, in words (numbers digit by digit, a mobile in its 3-4-4 groups)."""
    from kiosk.i18n import tr

    loc, info = s.locale, form.info
    days = info.time_limit_days
    limit = tr(loc, "service_info.time_limit.days", n=_count(s, days)) if days else tr(loc, "service_info.time_limit.now")
    materials = _in_locale(s, ("、" if loc == "zh_CN" else "; ").join(info.materials))
    fee = _in_locale(s, info.fee)
    return Speak("service_info.voice", (
        ("title", form.title_for(loc)), ("summary", form.description_for(loc).rstrip("。.． ")),
        ("materials", tr(loc, "service_info.materials.voice", items=materials) if materials else ""),
        ("time_limit", limit), ("fee", tr(loc, "service_info.fee.voice", fee=fee) if fee else ""),
        ("phone", _phone(s, info.phone)), ("supervision", _phone(s, info.supervision_phone)),
        ("note", tr(loc, "service_info.online_only.voice") if info.online_only else ""),
    ))


def _in_locale(s: State, text: str) -> str:
    """Catalog text for the voice: the English voice cannot read hanzi (the catalog's materials and fee are
    Chinese only), so in English such a row is left out of the prompt; the screen still shows it."""
    if s.locale != "zh_CN" and any("\u3400" <= ch <= "\u9fff" for ch in text):
        return ""
    return text


def _question(s: State) -> F.Question | None:
    if s.form is None:
        return None
    asked = s.form.asked
    return asked[s.q_index] if 0 <= s.q_index < len(asked) else None


def _answer_of(s: State, name: str) -> object:
    return dict(s.answers).get(name)


def _with_answer(s: State, name: str, value: object) -> State:
    rest = tuple((k, v) for k, v in s.answers if k != name)
    return replace(s, answers=rest + ((name, value),) if value is not None else rest)


def _ask(s: State, index: int, now: float, editing: bool | None = None) -> tuple[State, list]:
    """Show question `index` (of the asked ones), its current answer as the starting point, and say it."""
    assert s.form is not None
    q = s.form.asked[index]
    current = _answer_of(s, q.field)
    draft: object = None
    if q.widget == "keypad":
        draft = "" if current is None else str(current)
    elif q.widget == "date":
        lo, hi = F.date_bounds(q, today(s, now))
        start = current if isinstance(current, str) else min(max(today(s, now), lo), hi).isoformat()
        draft = start
    elif q.widget == "pick":
        draft = ""
    s = _go(s, Screen.FORM, now, q_index=index, draft=draft, form_error=None, hint=None, capture_failed=False,
            editing=s.editing if editing is None else editing)
    return s, [_question_voice(s, q)]


def _question_voice(s: State, q: F.Question) -> Speak:
    loc = s.locale
    prompt = q.voice if (q.voice and loc == "zh_CN") else q.title_for(loc)
    value = _answer_of(s, q.field)
    if value is not None:
        return Speak("form.voice.answered", (("question", prompt), ("answer", F.spoken_text(q, value, loc))))
    return Speak("form.voice", (("question", prompt), ("help", q.description_for(loc))))


def _refuse(s: State, q: F.Question, msgid: str) -> tuple[State, list]:
    return replace(s, form_error=msgid), [_error_speak(s, q, msgid)]


def _error_speak(s: State, q: F.Question, msgid: str) -> Speak:
    """A refused answer, said: its bounds in words (the screen shows the figures, from view.py)."""
    return Speak(msgid, tuple(F.spoken_error_params(q, s.locale).items()))


def _accept(s: State, q: F.Question, value: object, now: float) -> tuple[State, list]:
    value = F.coerce(q, value)
    err = F.validate_answer(q, value, today(s, now))
    if err is not None:
        return _refuse(s, q, err)
    s = _with_answer(s, q.field, value)
    return _advance(s, now)


def _advance(s: State, now: float) -> tuple[State, list]:
    assert s.form is not None
    if s.editing or s.q_index + 1 >= len(s.form.asked):
        return _review(s, now)
    return _ask(s, s.q_index + 1, now)


def _review(s: State, now: float, error: str | None = None) -> tuple[State, list]:
    s = _go(s, Screen.REVIEW, now, editing=False, draft=None, form_error=error, hint=None, capture_failed=False)
    return s, [Speak(error or "review.voice")]


def _on_form_ui(s: State, e: object, now: float) -> tuple[State, list]:
    if isinstance(e, Finish):
        return _end(s, now, "cancelled")  # the form is discarded: nothing of it is kept
    form = s.form
    if form is None or s.person is None:
        return _end(s, now, "cancelled")
    sc = s.screen
    if sc is Screen.SERVICE_INFO:
        if isinstance(e, Start):
            prefilled = tuple(
                (q.field, v) for q in form.questions if q.prefill and (v := F.prefill_value(q, s.person)) is not None
            )
            s = replace(s, answers=prefilled, editing=False)
            return _ask(s, 0, now) if form.asked else _review(s, now)
        if isinstance(e, Back):
            s = _go(s, Screen.MENU, now, service=None, form=None, answers=())
            return s, [Speak("menu.title")]
        return s, []
    if sc is Screen.REVIEW:
        if isinstance(e, Edit):
            idx = next((i for i, q in enumerate(form.asked) if q.field == e.field), None)
            return (s, []) if idx is None else _ask(s, idx, now, editing=True)
        if isinstance(e, Back):
            return _ask(s, len(form.asked) - 1, now, editing=False) if form.asked else _service_info(s, form, now)
        if isinstance(e, Confirm):
            return _confirm(s, form, now)
        return s, []
    q = _question(s)
    if q is None:
        return _review(s, now)
    if isinstance(e, Back):
        if s.editing:
            return _review(s, now)
        return _ask(s, s.q_index - 1, now) if s.q_index > 0 else _service_info(s, form, now)
    if isinstance(e, Answer) and not q.attachment:
        return _accept(s, q, e.value, now)
    if isinstance(e, KeyDigit) and q.widget == "keypad" and len(e.digit) == 1 and e.digit in "0123456789":
        typed = str(s.draft or "")
        if len(typed) >= _keypad_limit(q):
            return s, []
        return replace(s, draft=typed + e.digit, form_error=None), []
    if isinstance(e, KeyBackspace) and q.widget in ("keypad", "pick"):
        return replace(s, draft=str(s.draft or "")[:-1], form_error=None), []
    if isinstance(e, Letter) and q.widget == "pick":
        typed = str(s.draft or "")
        if e.letter == "":
            return replace(s, draft="", form_error=None), []
        if e.letter.upper() in F.next_letters(q.options, typed):
            return replace(s, draft=typed + e.letter.upper(), form_error=None), []
        return s, []
    if isinstance(e, Step) and q.widget == "date" and e.part in ("year", "month", "day"):
        lo, hi = F.date_bounds(q, today(s, now))
        try:
            d = dt.date.fromisoformat(str(s.draft))
        except ValueError:
            d = min(max(today(s, now), lo), hi)
        return replace(s, draft=F.step_date(d, e.part, e.delta, lo, hi).isoformat(), form_error=None), []
    if isinstance(e, Attach) and q.attachment:
        want = "image/png" if q.widget == "signature" else "image/jpeg"
        if e.media_type != want or not e.data:
            return _refuse(s, q, "form.error.attachment")
        digest = hashlib.sha256(e.data).hexdigest()
        s, fx = _accept(s, q, digest, now)
        return s, [KeepAttachment(s.sid, digest, e.data, e.media_type)] + fx
    if isinstance(e, CaptureNow) and q.widget == "document" and s.draft is None and not s.capture_failed:
        return s, [CaptureStill(s.sid, q.field)]
    if isinstance(e, Retake) and q.widget in ("document", "face"):
        s = replace(s, draft=None, form_error=None, hint=None, capture_failed=False)
        return s, [_question_voice(s, q)]
    if isinstance(e, Next):
        if q.widget in ("keypad", "date") or (q.widget in ("document", "face") and s.draft is not None):
            draft = s.draft if s.draft != "" else None
            return _accept(s, q, draft, now)
        current = _answer_of(s, q.field)
        if current is None and q.required:
            return _refuse(s, q, "form.error.required")
        return _advance(s, now)  # kept as it was, or an optional question left out
    return s, []


def _keypad_limit(q: F.Question) -> int:
    if q.max_length is not None:
        return q.max_length
    if q.kind == "integer" and q.maximum is not None:
        return len(str(int(q.maximum)))
    return 11 if F.is_phone(q) else 18


def _on_capture(s: State, v: object, now: float) -> tuple[State, list]:
    q = _question(s)
    if q is None:
        return s, []
    if isinstance(v, FaceHint):
        if q.widget != "face" or s.draft is not None or s.capture_failed or v.hint == s.hint:
            return s, []
        return replace(s, hint=v.hint), [Speak(f"face.hint.{v.hint}")]
    if isinstance(v, CaptureFailed):
        # a picture already taken stays good whatever the camera does now; a failure is said once
        if v.field != q.field or q.widget not in ("document", "face") or s.draft is not None or s.capture_failed:
            return s, []
        return replace(s, capture_failed=True, hint=None, form_error=None), [Speak("capture.failed.title")]
    assert isinstance(v, Captured)
    if v.field != q.field or q.widget not in ("document", "face") or not v.data:
        return s, []
    digest = hashlib.sha256(v.data).hexdigest()
    s = replace(s, draft=digest, hint=None, form_error=None, capture_failed=False)
    return s, [KeepAttachment(s.sid, digest, v.data, v.media_type), Speak("capture.taken")]


def _confirm(s: State, form: F.ServiceForm, now: float) -> tuple[State, list]:
    assert s.person is not None
    answers = dict(s.answers)
    errors = F.validate_all(form, answers)
    if errors:
        for i, q in enumerate(form.asked):
            if q.field in errors:
                s, fx = _ask(s, i, now, editing=True)
                return replace(s, form_error=errors[q.field]), fx + [_error_speak(s, q, errors[q.field])]
        return _review(s, now, error="review.error.prefill")  # the credential lacks something: not fixable here
    at = _wall_now(s, now)
    person = s.person
    s, h = _unique(s, "filing")
    local = _local_number(at.date(), h)
    key = f"filing-{h[8:24].hex()}"
    eff = SubmitFiling(
        s.sid, form.key, local, key, person, tuple((q.field, answers[q.field]) for q in form.questions
                                                      if q.field in answers),
        form.info.online_only, at,
    )
    s = _go(s, Screen.SUBMITTING, now, pending=eff, local_number="", due=None, queued=False)
    return s, [eff, Speak("submitting.title")]


def _filing_saved(s: State, v: FilingSaved, now: float) -> tuple[State, list]:
    eff = s.pending
    assert isinstance(eff, SubmitFiling) and s.form is not None
    form = s.form
    if v.filing is not None and not v.queued:
        f = v.filing
        lines = tuple(v.lines) or tuple((str(a), str(b)) for a, b in f.lines)  # the backend's: one source of truth
        if not any(label == "受理编号" for label, _ in lines):
            lines = (("受理编号", f.filing_id),) + lines
        s = _go(s, Screen.PRINTING, now, pending=None, filing_id=f.filing_id, local_number=v.local_number or
                eff.local_number, queued=False, due=f.due_date, receipt_url=f.verify_url)
        qr = f.verify_url
    else:
        at = eff.created_at or _wall_now(s, now)
        due = add_working_days(at.date(), form.info.time_limit_days)
        local = v.local_number or eff.local_number
        s = _go(s, Screen.PRINTING, now, pending=None, filing_id=local, local_number=local, queued=True, due=due)
        lines = tuple(v.lines) or _local_lines(s, form, local, at, due)
        qr = ""
    return s, [PrintReceipt(s.sid, form.key, s.holder_name_masked, s.holder_id_masked, lines, qr, form.title),
               Speak("printing.title")]


def _local_lines(s: State, form: F.ServiceForm, local: str, at: dt.datetime, due: dt.date):
    """The receipt of a filing the backend has not confirmed yet: its local number proves it later."""

    def t(msgid: str, **kw) -> str:
        from kiosk.i18n import tr

        return tr("zh_CN", msgid, **kw)  # receipts are official papers: always in Chinese

    info = form.info
    handling = t("filing.handling.forwarded" if info.handling is Handling.FORWARDED else "filing.handling.direct")
    due_text = t("filing.due.today") if info.time_limit_days == 0 else t("form.date", y=due.year, m=due.month, d=due.day)
    status = t("filing.status.online_only_queued" if info.online_only else "filing.status.queued")
    lines = [
        (t("filing.local_number"), local),
        (t("filing.service"), info.title),
        (t("filing.created"), at.strftime("%Y-%m-%d %H:%M")),
        (t("filing.due"), due_text),
        (t("filing.handling"), handling),
        (t("receipt.name"), s.holder_name_masked),
        (t("receipt.id"), s.holder_id_masked),
    ]
    answers = dict(s.answers)
    for q in form.asked:
        if q.field in answers:
            lines.append((q.title, F.receipt_text(q, answers[q.field])))
    lines += [(t("filing.status"), status), (t("filing.phone"), info.phone)]
    return tuple(lines)


def _filing_refused(s: State, v: FilingRefused, now: float) -> tuple[State, list]:
    """The backend refused an answer: back to that question, its words on screen (a new confirmation then
    makes a new filing: this one was never accepted)."""
    form = s.form
    assert form is not None
    s = replace(s, pending=None)
    for i, q in enumerate(form.asked):
        if q.field in v.fields:
            s, fx = _ask(s, i, now, editing=True)
            return replace(s, form_error="form.error.refused"), fx + [Speak("form.error.refused")]
    return _review(s, now, error="review.error.refused")


def _filed(s: State) -> tuple[State, list]:
    form = s.form
    number = _digits(s, s.filing_id or s.local_number)
    if s.queued and form is not None and form.info.online_only:
        return s, [Speak("filed.not_done.voice", (("title", form.title_for(s.locale)),
                                                  ("phone", _phone(s, form.info.phone))))]
    # no receipt came out: "take your receipt" would send them looking for paper; the number on screen is the proof
    tail = ".print_failed" if s.print_failed else ""
    params = (("number", number), ("due", _due_voice(s)))
    if s.queued:
        return s, [Speak("filed.queued.voice" + tail, params)]
    return s, [Speak("filed.accepted.voice" + tail, params)]


def _due_voice(s: State) -> str:
    """The promised day as the FILED screen shows it, in words ("" when there is none)."""
    from kiosk.i18n import tr

    if s.due is None:
        return ""
    if s.form is not None and s.form.info.time_limit_days == 0:
        return tr(s.locale, "filed.due.today.voice")
    return tr(s.locale, "filed.due.voice", date=_day(s, s.due))


def _on_rating(s: State, e: object, now: float) -> tuple[State, list]:
    if isinstance(e, Finish):
        return _end(s, now, "finished")
    if isinstance(e, Rate) and e.satisfaction in set(Satisfaction):
        if e.satisfaction == Satisfaction.DISSATISFIED:
            return replace(s, rating=e.satisfaction), [Speak("rating.reasons.title")]
        return _rated(s, e.satisfaction, (), now)
    if isinstance(e, RateReasons) and s.rating == Satisfaction.DISSATISFIED:
        return _rated(s, s.rating, tuple(e.reasons)[:5], now)
    if isinstance(e, Back) and s.rating is not None:
        return replace(s, rating=None), [Speak("rating.title")]
    return s, []


def _rated(s: State, satisfaction: str, reasons: tuple[str, ...], now: float) -> tuple[State, list]:
    s, h = _unique(s, "rating")
    ref = s.filing_id or s.local_number or None
    eff = SubmitRating(s.sid, s.service or "", ref, satisfaction, reasons, f"rating-{h[:16].hex()}")
    s, fx = _end(s, now, "finished")
    return s, [eff, Speak("rating.thanks")] + fx
