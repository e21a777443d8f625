"""The session state machine, driven with a fake clock and tables of cases."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from api.enums import Credential
from api.models import Pension as ApiPension
from devices.base import (
    CardFault,
    CardInserted,
    CardReadFailed,
    CardReadOk,
    CardRemoved,
    PinOutcome,
    PinResult,
    PrintOutcome,
    PrintResult,
    SSCardData,
)
from kiosk import session as S
from kiosk.catalog import Level

CARD = SSCardData(
    name="王秀兰", ssn="370102195203140527", card_number="M37010001", card_id="370100D156000005",
    card_type="1", card_version="2.00", init_org="370100000001", issue_date=date(2018, 6, 1),
    expiry_date=date(2028, 6, 1), gender="2", nation=1, birth_place="370102", birth_date=date(1952, 3, 14),
)


RECEIPT_LINES = (("险种", "城乡居民基本养老保险"), ("月领取金额", "238.50元"))


def Pension() -> ApiPension:  # noqa: N802 - reads like the model it makes
    """A pension answer as the client hands it over: the api model, money as Decimal."""
    return ApiPension(
        insurance_type="城乡居民基本养老保险", status="领取中", contribution_tier="每年500元档", years_contributed=15,
        account_balance=Decimal("7532.40"), receiving=True, monthly_amount=Decimal("238.50"), payments=[],
        certification_status="已认证", certification_due=date(2027, 3, 31),
    )


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0


class Driver:
    """Feeds events through transition() the way the runtime does, recording effects."""

    def __init__(self, **settings) -> None:
        self.clock = Clock()
        # timeouts given here are the ones measured: elder mode's doubling has its own tests (test_session_elder)
        settings = {"elder_factor": 1.0, **settings} if settings else {}
        self.state = S.initial_state(S.Settings(**settings) if settings else None)
        self.effects: list = []

    def send(self, event, advance: float = 0.0):
        self.clock.t += advance
        self.state, effects = S.transition(self.state, event, self.clock.t)
        self.effects.extend(effects)
        return effects

    def result(self, value, sid=None):
        return self.send(S.Result(self.state.sid if sid is None else sid, value))

    def effects_of(self, kind):
        return [e for e in self.effects if isinstance(e, kind)]

    # -- journeys
    def to_pin(self):
        self.send(CardInserted("r0"))
        self.result(CardReadOk(CARD))
        assert self.state.screen is S.Screen.PIN
        return self

    def enter_pin(self, pin="123456"):
        for d in pin:
            self.send(S.KeyDigit(d))
        return self

    def to_menu(self):
        self.to_pin().enter_pin()
        self.result(PinResult(PinOutcome.OK))
        assert self.state.screen is S.Screen.MENU
        return self

    def to_pension(self):
        self.to_menu().send(S.Choose("pension_query"))
        self.result(S.PensionLoaded(Pension()))
        assert self.state.screen is S.Screen.PENSION
        return self


def test_happy_journey_ends_idle_with_nothing_left():
    d = Driver().to_pension()
    d.send(S.PrintRequested())
    assert d.state.screen is S.Screen.PRINTING
    issue = d.effects_of(S.IssueReceipt)[-1]
    assert issue.person.id_number == CARD.ssn and issue.person.credential is Credential.SSCARD_PIN
    assert CARD.ssn not in repr(issue) and CARD.name not in repr(issue)
    d.result(S.ReceiptIssued("R1", "https://127.0.0.1/v1/receipts/R1/verify?sig=x", RECEIPT_LINES))
    pr = d.effects_of(S.PrintReceipt)[-1]
    assert pr.holder_name_masked == "王*兰" and pr.holder_id_masked == "3701**********0527"
    assert pr.lines == RECEIPT_LINES  # the backend's lines, printed as given
    assert pr.qr_url.endswith("sig=x")
    d.result(PrintResult(PrintOutcome.PRINTED))
    assert d.state.screen is S.Screen.TAKE_CARD
    assert d.state.person is None and d.state.pension is None and d.state.level is Level.NONE
    assert any(isinstance(e, S.SessionEnded) for e in d.effects)
    d.send(CardRemoved("r0"))
    assert d.state.screen is S.Screen.IDLE
    assert d.state == S.initial_state().__class__(**{**d.state.__dict__})  # still a State
    for name in ("person", "pin", "pension", "receipt_url", "pending", "tries_left", "service"):
        assert not getattr(d.state, name), name


def test_pin_digits_are_collected_and_sixth_submits():
    d = Driver().to_pin()
    d.enter_pin("12345")
    assert d.state.pin == "12345" and not d.effects_of(S.VerifyPin)
    d.send(S.KeyBackspace())
    assert d.state.pin == "1234"
    d.enter_pin("56")
    [v] = d.effects_of(S.VerifyPin)
    assert v.pin == "123456" and d.state.pin == "" and d.state.screen is S.Screen.CHECKING_PIN


def test_non_digit_keys_are_ignored():
    d = Driver().to_pin()
    for bad in ("a", "12", "", "٣"):
        d.send(S.KeyDigit(bad))
    assert d.state.pin == ""


@pytest.mark.parametrize(
    "answer, screen, fault, tries",
    [
        (PinResult(PinOutcome.OK), S.Screen.MENU, None, None),
        (PinResult(PinOutcome.WRONG, tries_left=2), S.Screen.ERROR, S.Fault.PIN_WRONG, 2),
        (PinResult(PinOutcome.WRONG, tries_left=1), S.Screen.ERROR, S.Fault.PIN_WRONG, 1),
        (PinResult(PinOutcome.WRONG, tries_left=0), S.Screen.ERROR, S.Fault.PIN_BLOCKED, 0),
        (PinResult(PinOutcome.BLOCKED), S.Screen.ERROR, S.Fault.PIN_BLOCKED, 0),
        (PinResult(PinOutcome.FAILED, fault=CardFault.REMOVED), S.Screen.IDLE, None, None),
        (PinResult(PinOutcome.FAILED, fault=CardFault.UNREADABLE), S.Screen.ERROR, S.Fault.CARD_UNREADABLE, None),
    ],
)
def test_pin_answers(answer, screen, fault, tries):
    d = Driver().to_pin().enter_pin()
    d.result(answer)
    assert d.state.screen is screen
    assert d.state.fault is fault
    assert d.state.tries_left == tries


def test_tries_left_come_from_the_card_each_time():
    d = Driver().to_pin().enter_pin()
    d.result(PinResult(PinOutcome.WRONG, tries_left=2))
    d.send(S.Retry())
    assert d.state.screen is S.Screen.PIN and d.state.pin == ""
    d.enter_pin("000000")
    # The card, not the kiosk, decides: it may say 2 again (e.g. reset by the counter) and we show 2.
    d.result(PinResult(PinOutcome.WRONG, tries_left=2))
    assert d.state.tries_left == 2


@pytest.mark.parametrize(
    "fault, expected",
    [
        (CardFault.UNREADABLE, S.Fault.CARD_UNREADABLE),
        (CardFault.TIMEOUT, S.Fault.CARD_UNREADABLE),
        (CardFault.NOT_SSCARD, S.Fault.NOT_SSCARD),
        (CardFault.NEEDS_SAM, S.Fault.NEEDS_SAM),
        (CardFault.INVALID_DATA, S.Fault.CARD_INVALID),
    ],
)
def test_card_read_faults_each_get_their_screen(fault, expected):
    d = Driver()
    d.send(CardInserted("r0"))
    d.result(CardReadFailed(fault))
    assert d.state.screen is S.Screen.ERROR and d.state.fault is expected
    d.send(S.Finish())
    assert d.state.screen is S.Screen.TAKE_CARD  # card still in: remind


@pytest.mark.parametrize("fault", [CardFault.REMOVED, CardFault.NO_CARD])
def test_card_gone_during_read_returns_idle(fault):
    d = Driver()
    d.send(CardInserted("r0"))
    d.result(CardReadFailed(fault))
    assert d.state.screen is S.Screen.IDLE and not d.state.card_present


@pytest.mark.parametrize(
    "step",
    ["reading", "pin", "checking", "menu", "loading", "pension", "printing", "error"],
)
def test_pulling_the_card_ends_the_session_at_once(step):
    d = Driver()
    d.send(CardInserted("r0"))
    if step != "reading":
        d.result(CardReadOk(CARD))
    if step == "checking":
        d.enter_pin()
    if step in ("menu", "loading", "pension", "printing", "error"):
        d.enter_pin()
        d.result(PinResult(PinOutcome.OK))
    if step in ("loading", "pension", "printing", "error"):
        d.send(S.Choose("pension_query"))
    if step == "error":
        d.result(S.BackendFailed(S.BackendFailureKind.OFFLINE))
    if step in ("pension", "printing"):
        d.result(S.PensionLoaded(Pension()))
    if step == "printing":
        d.send(S.PrintRequested())
    d.send(CardRemoved("r0"))
    assert d.state.screen is S.Screen.IDLE
    assert d.state.person is None and d.state.pension is None and d.state.pin == ""
    assert d.effects_of(S.SessionEnded)


def test_late_result_from_an_earlier_session_is_dropped():
    d = Driver()
    d.send(CardInserted("r0"))
    old_sid = d.state.sid
    d.send(CardRemoved("r0"))
    d.send(CardInserted("r0"))
    d.result(CardReadOk(CARD), sid=old_sid)
    assert d.state.screen is S.Screen.READING and d.state.person is None


def test_countdown_warns_then_a_touch_extends_then_timeout_ends():
    d = Driver(inactivity=60, warn=15).to_menu()
    assert d.state.countdown(d.clock.t) is None
    d.send(S.Tick(), advance=44)
    assert d.state.countdown(d.clock.t) is None
    d.send(S.Tick(), advance=2)
    assert d.state.countdown(d.clock.t) == 14
    d.send(S.Touch())
    assert d.state.countdown(d.clock.t) is None  # extended
    d.send(S.Tick(), advance=59)
    assert d.state.screen is S.Screen.MENU and d.state.countdown(d.clock.t) == 1
    d.send(S.Tick(), advance=1)
    assert d.state.screen is S.Screen.TAKE_CARD and d.state.person is None


def test_timeout_without_card_goes_idle():
    d = Driver(inactivity=60).to_menu()
    d.state = S.State(**{**d.state.__dict__, "card_present": False})
    d.send(S.Tick(), advance=61)
    assert d.state.screen is S.Screen.IDLE


def test_expiry_is_checked_before_the_event():
    d = Driver(inactivity=60).to_menu()
    # A tap arriving after the deadline must not choose a service for a session that is over.
    d.send(S.Choose("pension_query"), advance=61)
    assert d.state.screen is S.Screen.TAKE_CARD
    assert not d.effects_of(S.FetchPension)


def test_pin_screen_has_its_own_timeout():
    d = Driver(pin=30, inactivity=60).to_pin()
    d.send(S.Tick(), advance=31)
    assert d.state.screen is S.Screen.TAKE_CARD


def test_take_card_repeats_the_voice_reminder():
    d = Driver().to_menu()
    d.send(S.Finish())
    n = len(d.effects_of(S.Speak))
    d.send(S.Tick(), advance=16)
    assert len(d.effects_of(S.Speak)) == n  # elder mode (the default) doubles the reminder's 15 s
    d.send(S.Tick(), advance=15)
    assert len(d.effects_of(S.Speak)) == n + 1


@pytest.mark.parametrize(
    "kind, fault",
    [
        (S.BackendFailureKind.OFFLINE, S.Fault.BACKEND_OFFLINE),
        (S.BackendFailureKind.TIMEOUT, S.Fault.BACKEND_OFFLINE),
        (S.BackendFailureKind.SERVER_ERROR, S.Fault.BACKEND_ERROR),
        (S.BackendFailureKind.BAD_RESPONSE, S.Fault.BACKEND_ERROR),
        (S.BackendFailureKind.REJECTED, S.Fault.BACKEND_ERROR),
        # busy, and a token the backend refused: the busy screen with Retry (the runtime reopens the session)
        (S.BackendFailureKind.RATE_LIMITED, S.Fault.BACKEND_ERROR),
        (S.BackendFailureKind.SESSION_REFUSED, S.Fault.BACKEND_ERROR),
    ],
)
def test_backend_failures_and_retry(kind, fault):
    d = Driver().to_menu()
    d.send(S.Choose("pension_query"))
    d.result(S.BackendFailed(kind))
    assert d.state.screen is S.Screen.ERROR and d.state.fault is fault
    d.send(S.Retry())
    assert d.state.screen is S.Screen.LOADING
    assert len(d.effects_of(S.FetchPension)) == 2


def test_no_pension_record_is_an_answer_not_a_fault():
    d = Driver().to_menu()
    d.send(S.Choose("pension_query"))
    d.result(S.BackendFailed(S.BackendFailureKind.NOT_FOUND))
    assert d.state.screen is S.Screen.PENSION and d.state.pension is None and d.state.pension_loaded
    d.send(S.PrintRequested())
    assert d.effects_of(S.IssueReceipt)[-1].service == "pension_query"


def test_receipt_retry_reuses_the_idempotency_key():
    d = Driver().to_pension()
    d.send(S.PrintRequested())
    d.result(S.BackendFailed(S.BackendFailureKind.TIMEOUT))
    d.send(S.Retry())
    keys = {e.receipt_key for e in d.effects_of(S.IssueReceipt)}
    assert len(d.effects_of(S.IssueReceipt)) == 2 and len(keys) == 1


@pytest.mark.parametrize("outcome", [PrintOutcome.PAPER_OUT, PrintOutcome.OFFLINE, PrintOutcome.ERROR])
def test_printer_failure_shows_the_qr_on_screen(outcome):
    d = Driver().to_pension()
    d.send(S.PrintRequested())
    d.result(S.ReceiptIssued("R1", "https://x/v1/receipts/R1/verify?sig=y"))
    d.result(PrintResult(outcome))
    assert d.state.screen is S.Screen.SHOW_QR and d.state.receipt_url.endswith("sig=y")
    d.send(S.Finish())
    assert d.state.screen is S.Screen.TAKE_CARD and d.state.receipt_url is None


def test_services_need_their_level():
    d = Driver().to_pin()
    # not yet verified: a Choose is not even looked at on the PIN screen
    d.send(S.Choose("pension_query"))
    assert not d.effects_of(S.FetchPension)
    d.enter_pin()
    d.result(PinResult(PinOutcome.OK))
    d.send(S.Choose("no_such_service"))
    assert d.state.screen is S.Screen.MENU


def test_locale_switch_only_on_idle_and_elder_mode_anywhere():
    d = Driver()
    d.send(S.SetLocale("en"))
    assert d.state.locale == "en"
    d.send(S.SetLocale("fr"))
    assert d.state.locale == "en"
    d.to_pin()
    d.send(S.SetLocale("zh_CN"))
    assert d.state.locale == "en"
    assert d.state.elder_mode
    d.send(S.ToggleElderMode())  # turning it off asks first
    assert d.state.elder_mode and d.state.confirm_shrink
    d.send(S.ConfirmShrink(True))
    assert not d.state.elder_mode
    d.send(S.ToggleElderMode())  # on again at once
    assert d.state.elder_mode and not d.state.confirm_shrink


def test_results_on_the_wrong_screen_are_ignored():
    d = Driver().to_menu()
    d.result(S.PensionLoaded(Pension()))  # nothing asked for it
    assert d.state.screen is S.Screen.MENU
    d.result(PrintResult(PrintOutcome.PRINTED))
    assert d.state.screen is S.Screen.MENU
