"""The social-security card driver against its virtual twin, through the real pcscd + vpcd stack."""

from __future__ import annotations

import queue
import time
from datetime import date

import pytest

from devices.base import (
    CardFault,
    CardInserted,
    CardReadFailed,
    CardReadOk,
    CardRemoved,
    DeviceStatus,
    MediaStatus,
    PinOutcome,
    ReaderStatusChanged,
)
from devices.sscard import PcscCardReader
from sim.personas import load_personas, persona
from sim.vcard import NOT_SSCARD, SoftPsam
from tests.wire.conftest import CARD_READER, RESTART_ALLOWED, swap_gap, wait_for

pytestmark = [pytest.mark.wire, pytest.mark.timeout(120)]

READABLE = [p for p in load_personas() if not p.get("needs_sam")]


def reader(**kw) -> PcscCardReader:
    return PcscCardReader(CARD_READER, **kw)


def assert_matches(data, p: dict) -> None:
    assert data.name == p["name"]
    assert data.ssn == p["ssn"]
    assert data.card_number == p["card_number"]
    assert data.card_version == p["version"]
    assert data.card_id == p["card_id"]
    assert data.region_code == p["card_id"][:6]
    assert data.gender == p["gender"]
    assert data.nation == p["nation"]
    assert data.birth_place == p["birth_place"]
    assert data.birth_date == date.fromisoformat(p["birth_date"])
    assert data.issue_date == date.fromisoformat(p["issue_date"])
    assert data.expiry_date == date.fromisoformat(p["expiry_date"])


@pytest.mark.parametrize("style", [None, "61", "6C"])
@pytest.mark.parametrize("p", READABLE, ids=lambda p: p["key"])
def test_read_every_persona(vcard, p, style):
    card = vcard(p, t0_style=style)
    result = reader().read()
    assert isinstance(result, CardReadOk), result
    assert_matches(result.data, p)
    if style == "61":
        assert any(h[1] == 0xC0 for h in card.apdu_headers)  # GET RESPONSE was used
    if style == "6C" and p["key"] == "elder":
        # unpadded name record: the driver's Le (32) is wrong, the card says 6C08, the driver repeats
        assert card.apdu_headers.count(bytes.fromhex("00B20930")) == 2


def test_x_ending_number_and_rare_name(vcard):
    card = vcard("x_ending")
    data = reader().read().data
    assert data.ssn == "32058319710520104X"
    card.remove()
    swap_gap()
    vcard("rare_name")
    data = reader().read().data
    assert data.name == "阿依古丽·买买提依明·艾𠮷尔江"  # 𠮷 is outside GBK; the tail came from 姓名扩展 (4E)
    assert len(data.name.encode("gb18030")) > 30


def test_auto_reader_picks_the_reader_with_a_card(vcard):
    vcard("young")
    result = PcscCardReader().read()
    # another card may sit in the demo slot (35963): then that one is read first, which is also right
    assert isinstance(result, CardReadOk)


def test_third_generation_needs_sam(vcard):
    vcard("gen3")
    result = reader().read()
    assert result == CardReadFailed(CardFault.NEEDS_SAM, result.detail)
    wrong = reader(psam=SoftPsam(key=b"not the test key")).read()
    assert isinstance(wrong, CardReadFailed) and wrong.fault is CardFault.NEEDS_SAM
    ok = reader(psam=SoftPsam()).read()
    assert isinstance(ok, CardReadOk), ok
    assert_matches(ok.data, persona("gen3"))
    assert ok.data.generation == 3


def test_not_a_social_security_card(vcard):
    vcard(NOT_SSCARD)
    result = reader().read()
    assert isinstance(result, CardReadFailed) and result.fault is CardFault.NOT_SSCARD
    assert reader().verify_pin("123456").fault is CardFault.NOT_SSCARD


def test_bad_check_digit_is_invalid_data(vcard):
    vcard({**persona("elder"), "ssn": "370102195203140528"})
    result = reader().read()
    assert isinstance(result, CardReadFailed) and result.fault is CardFault.INVALID_DATA, result


@pytest.mark.parametrize(("sfi", "tag"), [(6, 0x0D), (5, 0x05)], ids=["birth-date", "issue-date"])
def test_undecodable_date_is_invalid_data(vcard, sfi, tag):
    card = vcard("elder")
    card.chip.files[sfi][tag] = bytes.fromhex("20230230")  # 30 February
    result = reader().read()
    assert isinstance(result, CardReadFailed) and result.fault is CardFault.INVALID_DATA, result


def test_pin_is_counted_by_the_card(vcard):
    card = vcard("elder")
    first = reader().verify_pin("000000")
    assert (first.outcome, first.tries_left) == (PinOutcome.WRONG, 2)
    # a new driver instance (e.g. kiosk restarted) sees the card's count, not a fresh one
    second = reader().verify_pin("111111")
    assert (second.outcome, second.tries_left) == (PinOutcome.WRONG, 1)
    assert reader().verify_pin("123456").outcome is PinOutcome.OK
    assert card.chip.tries_left == 3  # a correct PIN resets the chip's counter
    for expected in (2, 1):
        assert reader().verify_pin("999999").tries_left == expected
    last = reader().verify_pin("999999")
    assert (last.outcome, last.tries_left) == (PinOutcome.BLOCKED, 0)
    assert reader().verify_pin("123456").outcome is PinOutcome.BLOCKED  # the right PIN no longer helps


def test_blocked_persona(vcard):
    vcard("blocked")
    result = reader().verify_pin("654321")
    assert (result.outcome, result.tries_left) == (PinOutcome.BLOCKED, 0)


@pytest.mark.parametrize("style", ["61", "6C"])
def test_pin_in_t0_styles(vcard, style):
    vcard("x_ending", t0_style=style)
    assert reader().verify_pin("123456").tries_left == 1  # persona starts with 2 tries
    assert reader().verify_pin("202020").outcome is PinOutcome.OK


def test_no_card_and_no_reader(pcscd):
    swap_gap()
    assert reader().read().fault is CardFault.NO_CARD
    assert reader().media() is MediaStatus.ABSENT
    assert reader().status() is DeviceStatus.ONLINE
    missing = PcscCardReader("No Such Reader 99")
    assert missing.read().fault is CardFault.NO_READER
    assert missing.verify_pin("123456").fault is CardFault.NO_READER
    assert missing.status() is DeviceStatus.NO_DEVICE


def test_timeout_between_apdus(vcard):
    vcard("elder", delay=0.1)
    result = reader().read(timeout=0.5)
    assert isinstance(result, CardReadFailed) and result.fault is CardFault.TIMEOUT


@pytest.mark.parametrize("style", [None, "61"])
def test_card_pulled_at_every_apdu_of_a_read(vcard, style):
    probe = vcard("elder", t0_style=style)
    assert isinstance(reader().read(), CardReadOk)
    total = probe.apdu_count
    probe.remove()
    assert total >= 15
    for index in range(total):
        swap_gap()
        card = vcard("elder", t0_style=style, drop_after=index)
        result = reader().read()  # must return, never raise
        assert isinstance(result, CardReadFailed), (index, result)
        assert result.fault in (CardFault.REMOVED, CardFault.NO_CARD), (index, result)
        assert card.apdu_count == index + 1
        card.remove()


def test_card_pulled_during_pin_check(vcard):
    for index in range(2):  # SELECT, VERIFY
        swap_gap()
        card = vcard("elder", drop_after=index)
        result = reader().verify_pin("123456")
        assert result.outcome is PinOutcome.FAILED
        assert result.fault in (CardFault.REMOVED, CardFault.NO_CARD)
        assert card.chip.tries_left == 3
        card.remove()


def _next(q: queue.Queue, kind, timeout: float = 5.0):
    """The next event of the given kind (others skipped); None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ev = q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if isinstance(ev, kind):
            return ev
    return None


def test_insert_and_remove_events(vcard):
    events: queue.Queue = queue.Queue()
    rd = reader(poll_interval=0.1)
    rd.start(events.put)
    try:
        assert _next(events, ReaderStatusChanged) == ReaderStatusChanged(CARD_READER, DeviceStatus.ONLINE)
        assert rd.media() is MediaStatus.ABSENT
        card = vcard("elder", wait=False)
        assert _next(events, CardInserted) == CardInserted(CARD_READER)
        assert rd.media() is MediaStatus.PRESENT
        assert isinstance(rd.read(), CardReadOk)
        card.remove()
        assert _next(events, CardRemoved) == CardRemoved(CARD_READER)
        assert rd.media() is MediaStatus.ABSENT
        vcard("worker", wait=False)
        assert _next(events, CardInserted) == CardInserted(CARD_READER)
    finally:
        rd.stop()


def test_watcher_reports_missing_reader(pcscd):
    events: queue.Queue = queue.Queue()
    rd = PcscCardReader("No Such Reader 99", poll_interval=0.1)
    rd.start(events.put)
    try:
        assert _next(events, ReaderStatusChanged) == ReaderStatusChanged("No Such Reader 99", DeviceStatus.NO_DEVICE)
        assert rd.status() is DeviceStatus.NO_DEVICE
    finally:
        rd.stop()


def test_recovers_when_pcscd_restarts(pcscd, vcard):
    if not (pcscd.owned or RESTART_ALLOWED):
        pytest.skip("pcscd was started by someone else (set KIOSK_TEST_RESTART_PCSCD=1 to restart it anyway)")
    events: queue.Queue = queue.Queue()
    rd = reader(poll_interval=0.1)
    rd.start(events.put)
    try:
        assert _next(events, ReaderStatusChanged).status is DeviceStatus.ONLINE
        first = vcard("elder", wait=False)
        assert _next(events, CardInserted) == CardInserted(CARD_READER)
        pcscd.restart()
        # the old daemon took the card's connection with it: the session must hear the card is gone
        assert _next(events, CardRemoved) == CardRemoved(CARD_READER)
        assert wait_for(lambda: not first.inserted, 5)
        assert _next(events, ReaderStatusChanged) == ReaderStatusChanged(CARD_READER, DeviceStatus.OFFLINE)
        assert _next(events, ReaderStatusChanged) == ReaderStatusChanged(CARD_READER, DeviceStatus.ONLINE)
        vcard("worker", wait=False)
        assert _next(events, CardInserted) == CardInserted(CARD_READER)
        result = rd.read()
        assert isinstance(result, CardReadOk) and result.data.name == "李建国"
    finally:
        rd.stop()
