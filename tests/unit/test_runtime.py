"""The runtime with in-memory fakes: effects run on workers and come back through the one queue.

Waits are on events (the runtime's wakeup, the fakes' own events), never on the clock.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest

from api.enums import CardStatus, Credential, FilingState
from api.models import CardLossFiling, Pension, Person, Receipt, SessionOpened
from devices.base import CodeScanned, PaperStatus
from kiosk import session as S
from kiosk.backend_client import BackendFailure, FailureKind
from kiosk.runtime import Runtime, Site
from sim.fakes import FakeCardReader, FakePrinter
from tests.runtime_driver import pump_until
from tests.unit.test_session import CARD

pytestmark = pytest.mark.timeout(60)

WAIT = 20.0  # seconds an event may take before the test fails (never reached when things work)
NOW = dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
URL = "https://127.0.0.1/v1/receipts/R1/verify?sig=xxxxxxxxxx"


def _pension() -> Pension:
    return Pension(
        insurance_type="城乡居民基本养老保险", status="领取中", contribution_tier="每年500元档", years_contributed=15,
        account_balance=Decimal("7532.40"), receiving=True, monthly_amount=Decimal("238.50"), payments=[],
        certification_status="已认证", certification_due=dt.date(2027, 3, 31),
    )


class Backend:
    """Answers like kiosk.backend_client.BackendClient and records what it was asked (tokens included)."""

    def __init__(self, crash: bool = False, pension: object = "no_record") -> None:
        self.crash = crash
        self.answer = pension
        self.lock = threading.Lock()
        self.calls: list[tuple] = []
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.closed_event = threading.Event()
        self.open_gate: threading.Event | None = None  # set: opening waits for it
        self.opening = threading.Event()
        self.refuse: set[str] = set()  # tokens answered 401 token_expired
        self.busy = 0  # answer this many session openings with 429
        self.recorded: dict[str, object] = {}  # token -> the pension answer the receipt of that session vouches for
        self.close_gate: threading.Event | None = None  # set: closing waits for it

    def _log(self, *call) -> None:
        with self.lock:
            self.calls.append(call)

    def open_session(self, credential, *, ssn=None, name=None, code=None):
        self._log("open", Credential(credential), ssn, code)
        self.opening.set()
        if self.open_gate is not None:
            self.open_gate.wait(WAIT)
        if self.busy:
            self.busy -= 1
            return BackendFailure(FailureKind.RATE_LIMITED, code="rate_limited", status=429)
        if code is not None and not code.startswith("ESSC1"):
            return BackendFailure(FailureKind.NOT_FOUND, code="ecard_unknown", status=404)
        with self.lock:
            token = f"tok-{len(self.opened) + 1}"
            self.opened.append(token)
        person = Person(name="王秀兰", ssn=ssn or CARD.ssn)
        return SessionOpened(token=token, expires_at=NOW, credential=Credential(credential), person=person)

    def close_session(self, token):
        if self.close_gate is not None:
            self.close_gate.wait(WAIT)
        with self.lock:
            self.closed.append(token)
        self.closed_event.set()
        return None

    def _refused(self, token):
        if token in self.refuse:
            return BackendFailure(FailureKind.SESSION_REFUSED, code="token_expired", status=401)
        return None

    def pension(self, token):
        self._log("pension", token)
        if self.crash:
            raise RuntimeError("driver bug")
        refused = self._refused(token)
        if refused:
            return refused
        with self.lock:
            self.recorded[token] = self.answer  # like the real backend: the answer is what a receipt vouches for
        if self.answer == "no_record":
            return BackendFailure(FailureKind.NOT_FOUND, code="no_record", status=404)
        return self.answer

    def create_receipt(self, token, *, idempotency_key, service, created_at):
        self._log("receipt", token, idempotency_key, created_at)
        refused = self._refused(token)
        if refused:
            return refused
        with self.lock:
            answer = self.recorded.get(token)
        if answer is None:
            return BackendFailure(FailureKind.REJECTED, code="nothing_to_vouch", status=409)
        lines = [("查询结果", "暂无养老保险参保记录")] if answer == "no_record" else [
            ("险种", answer.insurance_type), ("月领取金额", f"{answer.monthly_amount}元")]
        return Receipt(receipt_id="R1", verify_url=URL, service=service, terminal_id="T-1", site_id="S-1",
                       created_at=created_at, received_at=NOW, replayed=False, lines=lines)

    def report_card_loss(self, token, *, idempotency_key, created_at):
        self._log("card_loss", token, idempotency_key, created_at)
        return CardLossFiling(
            filing_id="F1", status=FilingState.ACCEPTED, card_status=CardStatus.TEMPORARILY_SUSPENDED,
            receipt_id="R2", verify_url=URL, lines=[("挂失状态", "已临时挂失")], created_at=created_at,
            received_at=NOW, replayed=False,
        )

    def of(self, kind: str) -> list[tuple]:
        with self.lock:
            return [c for c in self.calls if c[0] == kind]


class Harness:
    def __init__(self, backend, printer=None, voice=None) -> None:
        self.reader = FakeCardReader()
        self.woke = threading.Event()
        self.rt = Runtime(card_reader=self.reader, printer=printer or FakePrinter(), backend=backend,
                          site=Site("T-1", "S-1", "示范镇人社服务站"), voice=voice, wall=lambda: NOW)
        self.rt.wakeup = self.woke.set
        self.rt.start()

    def until(self, *screens: S.Screen) -> S.Screen:
        return pump_until(self.rt, self.woke, screens, WAIT)

    def to_menu(self) -> None:
        self.reader.insert(CARD)
        self.until(S.Screen.PIN)
        for d in "123456":
            self.rt.post(S.KeyDigit(d))
        self.until(S.Screen.MENU)

    def to_pension(self) -> None:
        self.to_menu()
        self.rt.post(S.Choose("pension_query"))
        self.until(S.Screen.PENSION)


@pytest.fixture
def harness():
    made: list[Harness] = []

    def make(*a, **kw) -> Harness:
        h = Harness(*a, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.rt.stop()


def test_journey_through_the_queue_prints_the_backends_receipt(harness):
    printer = FakePrinter()
    backend = Backend(pension=_pension())
    h = harness(backend, printer)
    h.to_pension()
    h.rt.post(S.PrintRequested())
    h.until(S.Screen.TAKE_CARD)
    assert len(printer.printed) == 1 and "王*兰".encode("gb18030") in printer.printed[0]
    assert "238.50元".encode("gb18030") in printer.printed[0]  # the backend's line, as given
    # one backend session for the whole visit, its token on every personal call, closed at the end
    [opened] = backend.of("open")
    assert opened[1:] == (Credential.SSCARD_PIN, CARD.ssn, None)
    assert [c[1] for c in backend.of("pension") + backend.of("receipt")] == ["tok-1", "tok-1"]
    assert backend.closed_event.wait(WAIT) and backend.closed == ["tok-1"]
    h.reader.remove()
    h.until(S.Screen.IDLE)


def test_no_record_is_shown_in_plain_words(harness):
    h = harness(Backend())
    h.to_pension()
    assert h.rt.state.pension is None and h.rt.state.pension_loaded


def test_a_crashing_worker_becomes_a_failure_screen(harness):
    h = harness(Backend(crash=True))
    h.to_menu()
    h.rt.post(S.Choose("pension_query"))
    h.until(S.Screen.ERROR)
    assert h.rt.state.fault is S.Fault.BACKEND_ERROR


def test_paper_out_shows_the_qr_on_screen(harness):
    h = harness(Backend(), FakePrinter(PaperStatus.OUT))
    h.to_pension()
    h.rt.post(S.PrintRequested())
    h.until(S.Screen.SHOW_QR)
    assert h.rt.state.receipt_url == URL


def test_card_and_pin_report_the_card_lost_end_to_end(harness):
    printer = FakePrinter()
    backend = Backend()
    h = harness(backend, printer)
    h.to_menu()
    h.rt.post(S.Choose("card_loss"))
    h.until(S.Screen.CONFIRM)
    h.rt.post(S.Confirm())
    h.until(S.Screen.FILED)
    [(_, token, key, when)] = backend.of("card_loss")
    assert token == "tok-1" and key.endswith("card_loss-" + key.rsplit("-", 1)[1]) and when == NOW
    assert backend.of("open")[0][1] is Credential.SSCARD_PIN
    assert "已临时挂失".encode("gb18030") in printer.printed[0]
    h.rt.post(S.Finish())
    h.until(S.Screen.TAKE_CARD)
    assert backend.closed_event.wait(WAIT) and backend.closed == ["tok-1"]


def test_ecard_sign_in_opens_the_session_and_its_token_is_used(harness):
    backend = Backend(pension=_pension())
    h = harness(backend)
    h.rt.post(CodeScanned("ESSC1.abc.def", "scanner"))
    h.until(S.Screen.MENU)
    assert h.rt.state.person.credential is Credential.ECARD and h.rt.state.person.id_number == CARD.ssn
    h.rt.post(S.Choose("pension_query"))
    h.until(S.Screen.PENSION)
    assert len(backend.of("open")) == 1 and backend.of("pension")[0][1] == "tok-1"


def test_a_refused_token_is_dropped_and_one_fresh_session_opened(harness):
    backend = Backend(pension=_pension())
    backend.refuse = {"tok-1"}
    h = harness(backend)
    h.to_pension()
    assert [c[1] for c in backend.of("pension")] == ["tok-1", "tok-2"]
    assert len(backend.of("open")) == 2


def test_busy_backend_shows_the_busy_screen_and_retry_works(harness):
    backend = Backend(pension=_pension())
    backend.busy = 1
    h = harness(backend)
    h.to_menu()
    h.rt.post(S.Choose("pension_query"))
    h.until(S.Screen.ERROR)
    assert h.rt.state.fault is S.Fault.BACKEND_ERROR and h.rt.state.fault_detail == "rate_limited"
    h.rt.post(S.Retry())
    h.until(S.Screen.PENSION)
    assert len(backend.of("open")) == 2 and backend.of("pension")[0][1] == "tok-1"


def test_an_old_sessions_result_never_keeps_or_uses_a_token(harness):
    backend = Backend(pension=_pension())
    backend.open_gate = threading.Event()
    h = harness(backend)
    h.to_menu()
    h.rt.post(S.Choose("pension_query"))
    h.until(S.Screen.LOADING)
    assert backend.opening.wait(WAIT)  # the opening is in flight ...
    h.reader.remove()  # ... when the person leaves
    h.until(S.Screen.IDLE)
    backend.open_gate.set()
    assert backend.closed_event.wait(WAIT)
    assert backend.closed == ["tok-1"] and backend.of("pension") == []  # closed at once, never used
    assert h.rt._tokens.current(1) is None
    # the next person gets a session of their own
    backend.open_gate = None
    backend.closed_event.clear()
    h.to_pension()
    assert backend.of("pension")[0][1] == "tok-2"


def test_stale_voice_prompts_are_dropped(harness):
    said: list[str] = []
    first_playing, release = threading.Event(), threading.Event()

    def voice(text, locale):
        said.append(text)
        first_playing.set()
        release.wait(WAIT)  # the first prompt keeps playing until the test lets it end

    h = harness(Backend(), voice=voice)
    h.reader.insert(CARD)  # speaks "reading", then "PIN" right after: the first is still playing
    h.until(S.Screen.PIN)
    assert first_playing.wait(WAIT)
    h.reader.remove()
    h.until(S.Screen.IDLE)
    release.set()
    h.rt._pools["voice"].submit(lambda: None).result(WAIT)  # every queued prompt has had its turn
    assert "请输入社保卡密码" not in said  # its turn came after the person had left
    assert said == ["正在读卡，请稍候", "您好，请插入社保卡"]  # the home screen's own greeting is current


def test_an_ecard_session_is_never_reopened_without_a_new_scan(harness):
    backend = Backend(pension=_pension())
    backend.refuse = {"tok-1"}
    h = harness(backend)
    h.rt.post(CodeScanned("ESSC1.abc.def", "scanner"))
    h.until(S.Screen.MENU)
    h.rt.post(S.Choose("pension_query"))
    h.until(S.Screen.ERROR)
    assert h.rt.state.fault is S.Fault.BACKEND_ERROR and h.rt.state.fault_detail == "session_refused"
    h.rt.post(S.Retry())  # the spent code is not presented again: still refused, never a crash
    h.until(S.Screen.ERROR)
    assert len(backend.of("open")) == 1 and [c[1] for c in backend.of("pension")] == ["tok-1"]


def test_a_person_who_signs_in_and_leaves_costs_no_session_opening(harness):
    backend = Backend()
    h = harness(backend)
    h.to_menu()
    h.rt.post(S.Finish())
    h.until(S.Screen.TAKE_CARD)
    assert backend.of("open") == [] and backend.closed == []


def test_a_voice_with_clips_is_told_which_message_it_speaks(harness):
    """kiosk.voice.Voice plays a station's recorded clip for a message id: the runtime must name it."""
    heard: list[tuple[str | None, str, str]] = []

    class ClipVoice:
        def say(self, msgid, text, locale):
            heard.append((msgid, text, locale))

        def __call__(self, text, locale):  # never used when say() exists
            raise AssertionError("say() should be used")

    h = harness(Backend(), voice=ClipVoice())
    h.reader.insert(CARD)
    h.until(S.Screen.PIN)
    h.rt._pools["voice"].submit(lambda: None).result(WAIT)
    assert ("pin.title", "请输入社保卡密码", "zh_CN") in heard


def test_a_receipt_after_the_token_expired_asks_the_pension_again_in_the_new_session(harness):
    """The backend token lives 15 minutes whatever the touches; the reopened session has answered nothing, so
    the receipt call is refused nothing_to_vouch until the pension is asked again in that session."""
    printer = FakePrinter()
    backend = Backend(pension=_pension())
    h = harness(backend, printer)
    h.to_pension()
    backend.refuse = {"tok-1"}  # the person took longer than the token's life
    backend.answer = _pension().model_copy(update={"monthly_amount": Decimal("240.00")})  # and it changed
    h.rt.post(S.PrintRequested())
    assert h.until(S.Screen.TAKE_CARD, S.Screen.ERROR) is S.Screen.TAKE_CARD, h.rt.state.fault_detail
    assert [c[1] for c in backend.of("receipt")] == ["tok-1", "tok-2", "tok-2"]
    assert [c[1] for c in backend.of("pension")] == ["tok-1", "tok-2"]
    assert len({c[2] for c in backend.of("receipt")}) == 1  # one idempotency key throughout
    # the receipt prints what the backend vouched for, not what was on screen
    assert "240.00元".encode("gb18030") in printer.printed[0]


def test_nothing_to_vouch_is_mended_in_the_same_session_too(harness):
    backend = Backend(pension=_pension())
    h = harness(backend)
    h.to_pension()
    backend.recorded.clear()  # the backend lost what it answered (e.g. restarted with the token still valid)
    h.rt.post(S.PrintRequested())
    assert h.until(S.Screen.TAKE_CARD, S.Screen.ERROR) is S.Screen.TAKE_CARD
    assert [c[1] for c in backend.of("receipt")] == ["tok-1", "tok-1"] and len(backend.of("open")) == 1


def test_a_failed_pension_refetch_is_the_failure_shown(harness):
    backend = Backend(pension=_pension())
    h = harness(backend)
    h.to_pension()
    backend.recorded.clear()
    backend.crash = True  # the pension call now fails
    h.rt.post(S.PrintRequested())
    assert h.until(S.Screen.TAKE_CARD, S.Screen.ERROR) is S.Screen.ERROR
    assert len(backend.of("receipt")) == 1  # no second receipt call without a recorded answer


def test_stop_ends_the_live_backend_session_before_the_workers_stop(harness):
    backend = Backend(pension=_pension())
    h = harness(backend)
    h.to_pension()
    h.rt.stop()
    assert backend.closed == ["tok-1"]  # synchronously: the process may exit right after stop()
    assert h.rt._tokens.current(h.rt.state.sid) is None


def test_stop_does_not_wait_for_a_hung_backend_nor_raise(harness):
    backend = Backend(pension=_pension())
    h = harness(backend)
    h.to_pension()
    backend.close_gate = threading.Event()  # the close hangs until the test lets it go
    h.rt.stop(close_within=0.05)
    assert backend.closed == []  # stop() returned while the close still hung
    backend.close_gate.set()
    assert backend.closed_event.wait(WAIT) and backend.closed == ["tok-1"]


def test_stop_survives_a_backend_that_raises(harness):
    backend = Backend(pension=_pension())
    h = harness(backend)
    h.to_pension()

    def broken(token):
        raise RuntimeError("driver bug")

    backend.close_session = broken
    h.rt.stop()  # logged, never raised
    assert h.rt._tokens.current(h.rt.state.sid) is None


def test_stop_without_a_backend_session_closes_nothing(harness):
    backend = Backend()
    h = harness(backend)
    h.rt.stop()
    assert backend.closed == []
