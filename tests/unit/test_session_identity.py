"""Credentials beyond the card: ID card, electronic card, receipts scanned, the card-loss filing."""

from __future__ import annotations

from datetime import date

import pytest

from api.enums import Credential
from devices.base import CardInserted, CardRemoved, PrintOutcome, PrintResult
from devices.idcard import IdCardFailed, IdCardFault, IdCardPlaced, IdCardRemoved
from devices.sam_frames import CardType, IdCardData
from devices.scanner import CodeScanned
from kiosk import catalog
from kiosk import session as S
from kiosk.catalog import Level
from tests.unit.test_session import Driver

ID = IdCardData(
    card_type=CardType.RESIDENT, name="王秀兰", gender="2", nation=1, birth_date=date(1952, 3, 14),
    address="山东省济南市历下区示范路1号", id_number="370102195203140527", issuer="济南市公安局历下分局",
    valid_from=date(2016, 1, 1), valid_to="long-term",
)
RECEIPT_URL = "https://127.0.0.1:8443/v1/receipts/R1/verify?sig=abc"


def test_id_card_signs_in_at_its_level_and_offers_only_what_it_allows():
    d = Driver()
    d.send(IdCardPlaced(ID))
    assert d.state.screen is S.Screen.MENU and d.state.level is Level.ID_CARD
    assert d.state.holder_name_masked == "王*兰"
    assert [s.key for s in catalog.offered(d.state.level)] == ["card_loss"]
    d.send(S.Choose("pension_query"))  # not allowed: nothing happens
    assert d.state.screen is S.Screen.MENU and not d.effects_of(S.FetchPension)


def test_levels_are_ordered():
    assert catalog.offered(Level.NONE) == []
    assert {s.key for s in catalog.offered(Level.STRONG)} == {"pension_query", "card_loss"}


def test_card_loss_needs_a_confirmation_then_files_once_and_prints():
    d = Driver()
    d.send(IdCardPlaced(ID))
    d.send(S.Choose("card_loss"))
    assert d.state.screen is S.Screen.CONFIRM and not d.effects_of(S.ReportCardLoss)
    d.send(S.Confirm())
    [f] = d.effects_of(S.ReportCardLoss)
    assert f.person.id_number == ID.id_number and f.person.credential is Credential.ID_CARD
    assert ID.id_number not in repr(f) and ID.name not in repr(f)
    d.result(S.BackendFailed(S.BackendFailureKind.TIMEOUT))
    assert d.state.fault is S.Fault.BACKEND_OFFLINE
    d.send(S.Retry())
    again = d.effects_of(S.ReportCardLoss)
    assert len(again) == 2 and again[0].key == again[1].key  # same idempotency key
    d.result(S.CardLossFiled("F1", "accepted", RECEIPT_URL, (("挂失状态", "已临时挂失"),)))
    [p] = d.effects_of(S.PrintReceipt)
    assert p.service == "card_loss" and p.holder_id_masked == "3701**********0527"
    assert p.lines == (("受理编号", "F1"), ("挂失状态", "已临时挂失"))  # the backend's lines, numbered
    d.result(PrintResult(PrintOutcome.PRINTED))
    assert d.state.screen is S.Screen.FILED and d.state.filing_id == "F1"
    d.send(S.Finish())
    assert d.state.screen is S.Screen.TAKE_CARD and d.state.person is None  # the ID card is still there
    d.send(IdCardRemoved())
    assert d.state.screen is S.Screen.IDLE


def test_card_loss_for_someone_without_a_card():
    d = Driver()
    d.send(IdCardPlaced(ID))
    d.send(S.Choose("card_loss"))
    d.send(S.Confirm())
    d.result(S.BackendFailed(S.BackendFailureKind.NOT_FOUND))
    assert d.state.fault is S.Fault.NO_CARD_ON_FILE


@pytest.mark.parametrize("chosen", [None, "card_loss"])
def test_lifting_the_id_card_ends_its_session(chosen):
    d = Driver()
    d.send(IdCardPlaced(ID))
    if chosen:
        d.send(S.Choose(chosen))
    d.send(IdCardRemoved())
    assert d.state.screen is S.Screen.IDLE and d.state.person is None
    d.send(S.Confirm())  # the next person cannot file for the one who left
    assert not d.effects_of(S.ReportCardLoss)


def test_a_filing_already_sent_finishes_when_the_id_card_is_lifted():
    d = Driver()
    d.send(IdCardPlaced(ID))
    d.send(S.Choose("card_loss"))
    d.send(S.Confirm())
    d.send(IdCardRemoved())
    assert d.state.screen is S.Screen.SUBMITTING
    d.result(S.CardLossFiled("F1", "accepted", RECEIPT_URL))
    d.result(PrintResult(PrintOutcome.PRINTED))
    assert d.state.screen is S.Screen.FILED
    d.send(S.Finish())
    assert d.state.screen is S.Screen.IDLE


@pytest.mark.parametrize(
    "fault, expected",
    [
        (IdCardFault.EXPIRED, S.Fault.IDCARD_EXPIRED),
        (IdCardFault.INVALID_DATA, S.Fault.IDCARD_INVALID),
        (IdCardFault.UNREADABLE, S.Fault.IDCARD_UNREADABLE),
        (IdCardFault.UNSUPPORTED, S.Fault.IDCARD_UNREADABLE),
    ],
)
def test_id_card_faults(fault, expected):
    d = Driver()
    d.send(IdCardFailed(fault, "x"))
    assert d.state.screen is S.Screen.ERROR and d.state.fault is expected and d.state.person is None


def test_ecard_is_resolved_by_the_backend_and_is_strong():
    d = Driver()
    d.send(S.StartScan())
    assert d.effects_of(S.Camera)[-1] == S.Camera(True)
    d.send(CodeScanned("ESSC1.abc.def", "camera"))
    assert d.effects_of(S.Camera)[-1] == S.Camera(False)  # leaving the scan screen turns it off
    [r] = d.effects_of(S.ResolveECard)
    assert r.code == "ESSC1.abc.def" and d.state.screen is S.Screen.CHECKING_CODE
    d.result(S.ECardResolved("王秀兰", "370102195203140527"))
    assert d.state.level is Level.STRONG and d.state.screen is S.Screen.MENU
    d.send(S.Choose("pension_query"))
    got = d.effects_of(S.FetchPension)[-1].person
    assert got.id_number == "370102195203140527" and got.credential is Credential.ECARD


@pytest.mark.parametrize(
    "reason, fault",
    [("expired", S.Fault.ECARD_EXPIRED), ("revoked", S.Fault.ECARD_REVOKED), ("unknown", S.Fault.ECARD_UNKNOWN)],
)
def test_ecard_rejections(reason, fault):
    d = Driver()
    d.send(CodeScanned("ESSC1.x.y"))
    d.result(S.ECardRejected(reason))
    assert d.state.screen is S.Screen.ERROR and d.state.fault is fault


def test_scanned_receipt_is_verified_not_signed_in():
    d = Driver()
    d.send(CodeScanned(RECEIPT_URL))
    [v] = d.effects_of(S.VerifyReceipt)
    assert v.url == RECEIPT_URL and not d.effects_of(S.ResolveECard)
    d.result(S.ReceiptChecked(None))
    assert d.state.screen is S.Screen.RECEIPT_CHECK and d.state.level is Level.NONE
    d.send(S.Finish())
    assert d.state.screen is S.Screen.IDLE and d.state.checked is None


@pytest.mark.parametrize(
    "code", ["https://evil.example/v1/receipts/R1/verify?sig=abc", "http://phish.example/", "HTTPS://X.Y/z"],
)
def test_any_scanned_url_is_checked_as_a_receipt_never_sent_as_an_ecard_code(code):
    d = Driver()
    d.send(CodeScanned(code))
    assert [v.url for v in d.effects_of(S.VerifyReceipt)] == [code] and not d.effects_of(S.ResolveECard)
    d.result(S.ReceiptChecked(None))  # the runtime found it is not one of ours
    assert d.state.screen is S.Screen.RECEIPT_CHECK and d.state.checked is None


def test_card_and_pin_may_report_the_card_lost():
    d = Driver().to_menu()
    d.send(S.Choose("card_loss"))
    assert d.state.screen is S.Screen.CONFIRM
    d.send(S.Confirm())
    [f] = d.effects_of(S.ReportCardLoss)
    assert f.person.credential is Credential.SSCARD_PIN
    d.result(S.CardLossFiled("F2", "accepted", RECEIPT_URL, (("挂失状态", "已临时挂失"),)))
    d.result(PrintResult(PrintOutcome.PRINTED))
    assert d.state.screen is S.Screen.FILED and d.state.filing_id == "F2"


def test_codes_are_ignored_during_a_session():
    d = Driver().to_menu()
    d.send(CodeScanned("ESSC1.x.y"))
    d.send(IdCardPlaced(ID))
    assert d.state.screen is S.Screen.MENU and d.state.person.credential is Credential.SSCARD_PIN
    assert not d.effects_of(S.ResolveECard)


def test_a_social_security_card_inserted_on_the_scan_screen_wins():
    d = Driver()
    d.send(S.StartScan())
    d.send(CardInserted("r0"))
    assert d.state.screen is S.Screen.READING
    assert d.effects_of(S.Camera)[-1] == S.Camera(False)


def test_pulling_an_unrelated_card_does_not_end_an_id_card_session():
    d = Driver()
    d.send(IdCardPlaced(ID))
    d.send(CardRemoved("r0"))
    assert d.state.screen is S.Screen.MENU


def test_device_status_events_do_not_count_as_a_touch():
    from devices.base import DeviceStatus, ReaderStatusChanged

    d = Driver(inactivity=60).to_menu()
    deadline = d.state.deadline
    d.send(ReaderStatusChanged("r0", DeviceStatus.ONLINE), advance=30)
    assert d.state.deadline == deadline


def test_every_spoken_prompt_exists_in_both_languages():
    import re
    from pathlib import Path

    from kiosk.i18n import catalog as cat

    src = Path(S.__file__).read_text(encoding="utf-8")
    ids = set(re.findall(r'Speak\("([^"]+)"\)', src)) | {"take_card.title", "take_idcard.title"}
    ids |= {f"error.{f.value}.title" for f in S.Fault}
    for loc in ("zh_CN", "en"):
        missing = [i for i in ids if i not in cat(loc)]
        assert not missing, (loc, missing)
