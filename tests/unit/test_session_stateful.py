"""The session machine under random sequences of events (hypothesis stateful testing).

Properties that must hold after every step, whatever a person, a device or the network did before:
- when a session ends, nothing personal is left in the state;
- a result addressed to an earlier session changes nothing and starts nothing;
- every screen but idle has a deadline (take-card is the one exception: it shows nothing personal, reminds by voice,
  and ends when the card is taken);
- the machine never raises.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

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
)
from devices.sam_frames import CardType, IdCardData
from kiosk import session as S
from tests.unit.test_session import CARD

IDCARD = IdCardData(
    card_type=CardType.RESIDENT, name="李建国", gender="1", nation=1, birth_date=date(1958, 7, 1),
    address="山东省济南市历下区", id_number="11010519491231002X", issuer="济南市公安局历下分局",
    valid_from=date(2015, 1, 1), valid_to=date(2035, 1, 1),
)

# What the runtime can hand back for an effect (device and backend results), in the session's own vocabulary.
DEVICE_RESULTS = [
    CardReadOk(CARD),
    CardReadFailed(CardFault.REMOVED),
    CardReadFailed(CardFault.UNREADABLE),
    CardReadFailed(CardFault.NOT_SSCARD),
    PinResult(PinOutcome.OK),
    PinResult(PinOutcome.WRONG, tries_left=2),
    PinResult(PinOutcome.WRONG, tries_left=0),
    PinResult(PinOutcome.BLOCKED),
    PinResult(PinOutcome.FAILED, fault=CardFault.REMOVED),
    PrintResult(PrintOutcome.PRINTED),
    PrintResult(PrintOutcome.PAPER_OUT),
]
BACKEND_RESULTS = [S.BackendFailed(kind) for kind in S.BackendFailureKind] + [
    S.ECardRejected("expired"),
    S.ECardRejected("unknown"),
    S.ReceiptChecked(None),
    S.PensionLoaded(None),
    S.HelpRequested(True),
    S.HelpRequested(False),
    S.ReceiptIssued("R1", "https://verify.example/v1/receipts/R1/verify?sig=abc"),
    S.CardLossFiled("F1", "accepted", "https://verify.example/v1/receipts/R2/verify?sig=def"),
]
UI_EVENTS = [
    S.Touch(), S.KeyBackspace(), S.Choose("pension_query"), S.Choose("card_loss"), S.PrintRequested(),
    S.Retry(), S.Back(), S.Finish(), S.StartScan(), S.Confirm(), S.ToggleElderMode(), S.Tick(),
    S.Repeat(), S.AskHelp(), S.ConfirmShrink(True), S.ConfirmShrink(False),
]
CODES = ["ESSC1.abc.def", "https://verify.example/v1/receipts/R1/verify?sig=abc", "   ", "x" * 300]


def personal(s: S.State) -> dict[str, object]:
    """The fields that may hold a person's data."""
    return {
        "person": s.person, "pin": s.pin, "pension": s.pension, "checked": s.checked, "filing_id": s.filing_id,
        "receipt_url": s.receipt_url, "pending": s.pending, "service": s.service, "tries_left": s.tries_left,
    }


EMPTY = personal(S.initial_state())


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.state = S.initial_state()
        self.ended = False

    def send(self, event: object) -> list:
        self.state, effects = S.transition(self.state, event, self.now)
        self.ended = any(isinstance(e, S.SessionEnded) for e in effects)
        return effects

    # --- time
    @rule(seconds=st.sampled_from([0.5, 5.0, 14.0, 44.0, 61.0, 200.0]))
    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.send(S.Tick())

    # --- devices
    @rule()
    def insert_card(self) -> None:
        self.send(CardInserted("Virtual PCD 00 00"))

    @rule()
    def remove_card(self) -> None:
        self.send(CardRemoved("Virtual PCD 00 00"))

    @rule(failed=st.booleans())
    def place_idcard(self, failed: bool) -> None:
        self.send(IdCardFailed(IdCardFault.UNREADABLE) if failed else IdCardPlaced(IDCARD))

    @rule()
    def lift_idcard(self) -> None:
        self.send(IdCardRemoved())

    @rule(code=st.sampled_from(CODES))
    def scan(self, code: str) -> None:
        self.send(CodeScanned(code))

    @rule(digit=st.sampled_from("0123456789"), times=st.integers(1, 6))
    def digits(self, digit: str, times: int) -> None:
        for _ in range(times):
            self.send(S.KeyDigit(digit))

    # --- the person
    @rule(event=st.sampled_from(UI_EVENTS))
    def ui(self, event: object) -> None:
        self.send(event)

    @rule(choice=st.sampled_from(["pension_query", "card_loss"]))
    def happy_path(self, choice: str) -> None:
        """The expected next step on the current screen, so deep screens are reached often."""
        sc, sid = self.state.screen, self.state.sid
        step = {
            S.Screen.READING: S.Result(sid, CardReadOk(CARD)),
            S.Screen.CHECKING_PIN: S.Result(sid, PinResult(PinOutcome.OK)),
            S.Screen.MENU: S.Choose(choice),
            S.Screen.LOADING: S.Result(sid, S.PensionLoaded(None)),
            S.Screen.PENSION: S.PrintRequested(),
            S.Screen.CONFIRM: S.Confirm(),
            S.Screen.SUBMITTING: S.Result(sid, BACKEND_RESULTS[-1]),
            S.Screen.PRINTING: S.Result(sid, PrintResult(PrintOutcome.PRINTED)),
            S.Screen.CHECKING_CODE: S.Result(sid, S.ECardResolved("赵大山", "370102195203140527")),
            S.Screen.IDLE: CardInserted("Virtual PCD 00 00"),
        }.get(sc)
        if sc is S.Screen.PIN:
            for d in "123456":
                self.send(S.KeyDigit(d))
        elif step is not None:
            self.send(step)

    # --- results of effects
    @rule(value=st.sampled_from(DEVICE_RESULTS + BACKEND_RESULTS))
    def result_for_this_session(self, value: object) -> None:
        self.send(S.Result(self.state.sid, value))

    @precondition(lambda self: self.state.sid > 0)
    @rule(value=st.sampled_from(DEVICE_RESULTS + BACKEND_RESULTS), back=st.integers(1, 3))
    def result_for_an_earlier_session(self, value: object, back: int) -> None:
        before = self.state
        effects = self.send(S.Result(before.sid - back, value))
        # Expiry may end the session on any event; apart from that, an old result is ignored, except the answer
        # to a help request: it is the terminal's (nothing personal), and frees the next one.
        if before.deadline is None or self.now < before.deadline:
            if isinstance(value, S.HelpRequested):
                waiting = before.help_sent == "sending"
                assert self.state == replace(
                    before, help_inflight=False, help_recorded=value.ok,
                    help_sent=("sent" if value.ok else "offline") if waiting else before.help_sent,
                )
                # said only to an open panel waiting on it, when it failed: the notice, then the numbers again
                said = waiting and not value.ok and before.help_open
                assert [e.msgid for e in effects] == (["help.offline", S._help_voice(before).msgid] if said else [])
            else:
                assert self.state == before
                assert effects == []

    # --- properties
    @invariant()
    def nothing_personal_after_the_end(self) -> None:
        if self.ended or self.state.screen in (S.Screen.IDLE, S.Screen.TAKE_CARD):
            assert personal(self.state) == EMPTY, personal(self.state).keys()

    @invariant()
    def nothing_said_of_a_person_is_kept_after_the_end(self) -> None:
        s = self.state
        if self.ended or s.screen in (S.Screen.IDLE, S.Screen.TAKE_CARD):
            assert s.last_speak is None or not s.last_speak.params  # a prompt with values never outlives them
            assert not s.help_open or not self.ended

    @invariant()
    def every_screen_but_idle_has_a_deadline(self) -> None:
        s = self.state
        if s.screen is S.Screen.IDLE:
            assert s.deadline is None
        elif s.screen is S.Screen.TAKE_CARD:
            assert s.remind_at is not None and s.person is None
        else:
            assert s.deadline is not None, s.screen

    @invariant()
    def signed_in_means_a_person(self) -> None:
        s = self.state
        if s.screen in (S.Screen.MENU, S.Screen.PENSION, S.Screen.CONFIRM, S.Screen.FILED):
            assert s.person is not None


SessionMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestSessionMachine = SessionMachine.TestCase


def test_old_result_after_expiry_is_still_ignored() -> None:
    """Expiry ends the session first; the old result then finds a new (idle) state and changes nothing more."""
    s = S.initial_state()
    s, _ = S.transition(s, CardInserted("Virtual PCD 00 00"), 0.0)
    s, _ = S.transition(s, S.Result(s.sid, CardReadOk(CARD)), 1.0)
    late = replace(s)
    s, effects = S.transition(late, S.Result(late.sid - 1, PinResult(PinOutcome.OK)), 1.0 + 10_000)
    assert s.person is None and any(isinstance(e, S.SessionEnded) for e in effects)
