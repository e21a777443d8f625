"""社保卡临时挂失 end to end: the runtime with a fake card reader and printer, the real backend client and the
reference backend over mutual TLS. Card + PIN, ID card and e-card each sign in, file, and get the receipt; no
URL the client sent holds an ID number, and the backend session ends with the kiosk session. A pension receipt
still prints after the backend token expired, and stopping the kiosk ends its backend session."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from datetime import date

import pytest
import requests

from api.enums import Credential
from backend.db import Database
from backend.server import start_server
from devices.base import CodeScanned, IdCardPlaced, IdCardRemoved
from devices.sam_frames import CardType, IdCardData
from kiosk import session as S
from kiosk.backend_client import BackendClient
from kiosk.runtime import Runtime, Site
from sim.fakes import FakeCardReader, FakePrinter
from tests.runtime_driver import pump_until
from tests.unit.test_session import CARD

pytestmark = pytest.mark.timeout(90)

WAIT = 30.0  # seconds an event may take before the test fails (never reached when things work)
GEN3 = "440305196507221214"
WORKER = "41132219780901441X"
ALL_IDS = (CARD.ssn, GEN3, WORKER)

ID = IdCardData(
    card_type=CardType.RESIDENT, name="赵德明", gender="1", nation=1, birth_date=date(1965, 7, 22),
    address="广东省深圳市福田区示范路2号", id_number=GEN3, issuer="深圳市公安局福田分局",
    valid_from=date(2016, 1, 1), valid_to="long-term",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("backend"), demo=True, session_burst=1000)
    yield srv
    srv.stop()


class Recording(BackendClient):
    """The real client; remembers every URL it sent and signals when a backend session was closed."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.urls: list[str] = []
        self.closed = threading.Event()
        self.session.hooks["response"].append(lambda r, *a, **kw: self.urls.append(r.request.url))

    def close_session(self, token):
        try:
            return super().close_session(token)
        finally:
            self.closed.set()


class Kiosk:
    def __init__(self, server, clock=None) -> None:
        self.client = Recording(server.url, server.ca_path, server.client_cert, server.client_key,
                                receipt_base_url=server.verify_url)
        self.reader, self.printer = FakeCardReader(), FakePrinter()
        self.woke = threading.Event()
        extra = {}
        if clock is not None:  # the kiosk's wall clock follows the backend's, as NTP keeps them on a terminal
            extra["wall"] = lambda: dt.datetime.fromtimestamp(clock(), dt.UTC).astimezone()
        self.rt = Runtime(card_reader=self.reader, printer=self.printer, backend=self.client,
                          site=Site(server.terminal_id, server.site_id, "示范镇人社服务站"), **extra)
        self.rt.wakeup = self.woke.set
        self.rt.start()

    def until(self, *screens: S.Screen) -> S.Screen:
        return pump_until(self.rt, self.woke, screens, WAIT)

    def send(self, event: object) -> None:
        self.rt.post(event)

    def file_card_loss(self) -> str:
        """From the menu: choose 临时挂失, confirm, wait for the printed receipt. Returns the filing id."""
        self.send(S.Choose("card_loss"))
        self.until(S.Screen.CONFIRM)
        self.send(S.Confirm())
        assert self.until(S.Screen.FILED, S.Screen.ERROR) is S.Screen.FILED, self.rt.state.fault
        [printed] = self.printer.printed
        assert "已临时挂失".encode("gb18030") in printed
        assert self.rt.state.receipt_url.startswith(self.client.receipt_base_url + "/v1/receipts/")
        return self.rt.state.filing_id

    def finish(self) -> None:
        self.send(S.Finish())
        self.until(S.Screen.TAKE_CARD, S.Screen.IDLE)
        assert self.client.closed.wait(WAIT)  # the backend session ended with the kiosk session

    def stop(self) -> None:
        self.rt.stop()
        self.client.close()


@pytest.fixture
def kiosk(server):
    k = Kiosk(server)
    yield k
    k.stop()
    # whatever the credential, no URL ever named a person
    assert k.client.urls and not any(i in u or i.lower() in u for u in k.client.urls for i in ALL_IDS)


@pytest.fixture
def clocked(tmp_path, clock):
    """A backend of its own whose clock the test moves (conftest's FrozenClock)."""
    srv = start_server(tmp_path / "backend", clock=clock, seed_demo_people=True)
    yield srv
    srv.stop()


def _sign_in_with_card(kiosk) -> None:
    kiosk.reader.insert(CARD)
    kiosk.until(S.Screen.PIN)
    for d in "123456":
        kiosk.send(S.KeyDigit(d))
    kiosk.until(S.Screen.MENU)


def _actions(server, ssn: str) -> list[tuple[str, str]]:
    rows = Database(server.db_path).audit_of(ssn)
    return [(str(r.credential), str(r.action)) for r in rows]


def test_card_and_pin_report_the_card_lost(server, kiosk):
    kiosk.reader.insert(CARD)
    kiosk.until(S.Screen.PIN)
    for d in "123456":
        kiosk.send(S.KeyDigit(d))
    kiosk.until(S.Screen.MENU)
    filing_id = kiosk.file_card_loss()
    db = Database(server.db_path)
    assert db.card_status(CARD.ssn)[::2] == ("temporarily_suspended", filing_id)
    kiosk.finish()
    kiosk.reader.remove()
    kiosk.until(S.Screen.IDLE)
    actions = _actions(server, CARD.ssn)
    assert ("sscard_pin", "card_loss_filed") in actions and ("sscard_pin", "session_closed") in actions


def test_id_card_reports_the_card_lost(server, kiosk):
    kiosk.send(IdCardPlaced(ID))
    kiosk.until(S.Screen.MENU)
    assert kiosk.rt.state.person.credential is Credential.ID_CARD
    filing_id = kiosk.file_card_loss()
    assert Database(server.db_path).card_status(GEN3)[2] == filing_id
    kiosk.finish()
    kiosk.send(IdCardRemoved())
    kiosk.until(S.Screen.IDLE)
    assert ("id_card", "card_loss_filed") in _actions(server, GEN3)


def test_ecard_reports_the_card_lost(server, kiosk):
    r = requests.get(f"{server.url}/v1/demo/ecard-code/worker", verify=str(server.ca_path),
                     cert=(str(server.client_cert), str(server.client_key)), timeout=(1, 2))
    kiosk.send(CodeScanned(r.json()["code"], "scanner"))
    kiosk.until(S.Screen.MENU)
    assert kiosk.rt.state.person.credential is Credential.ECARD and kiosk.rt.state.holder_name_masked == "李*国"
    filing_id = kiosk.file_card_loss()
    assert Database(server.db_path).card_status(WORKER)[2] == filing_id
    kiosk.finish()
    assert ("ecard", "card_loss_filed") in _actions(server, WORKER)


def test_a_second_report_prints_already_reported(server, kiosk):
    # the card of the first test is suspended already (module server): a new person, same card
    kiosk.reader.insert(replace(CARD))
    kiosk.until(S.Screen.PIN)
    for d in "123456":
        kiosk.send(S.KeyDigit(d))
    kiosk.until(S.Screen.MENU)
    kiosk.file_card_loss()
    assert Database(server.db_path).count_filings(CARD.ssn) == 1
    kiosk.finish()


def test_a_pension_receipt_prints_after_the_backend_token_expired(clocked, clock):
    kiosk = Kiosk(clocked, clock)
    try:
        _sign_in_with_card(kiosk)
        kiosk.send(S.Choose("pension_query"))
        assert kiosk.until(S.Screen.PENSION, S.Screen.ERROR) is S.Screen.PENSION
        clock.t += 15 * 60 + 1  # the person kept touching the screen; the backend token's 15 minutes ran out
        kiosk.send(S.PrintRequested())
        got = kiosk.until(S.Screen.TAKE_CARD, S.Screen.ERROR)
        assert got is S.Screen.TAKE_CARD, kiosk.rt.state.fault_detail
        [printed] = kiosk.printer.printed
        assert "城乡居民基本养老保险".encode("gb18030") in printed  # the backend's lines, from the new session
        actions = _actions(clocked, CARD.ssn)
        assert actions.count(("sscard_pin", "session_opened")) == 2, actions
    finally:
        kiosk.stop()


def test_stopping_the_kiosk_ends_its_backend_session(clocked):
    kiosk = Kiosk(clocked)
    try:
        _sign_in_with_card(kiosk)
        kiosk.send(S.Choose("pension_query"))
        assert kiosk.until(S.Screen.PENSION, S.Screen.ERROR) is S.Screen.PENSION
    finally:
        kiosk.stop()
    assert kiosk.client.closed.is_set()  # stop() waited for the close
    assert ("sscard_pin", "session_closed") in _actions(clocked, CARD.ssn)
