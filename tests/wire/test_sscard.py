"""The social-security card driver against its virtual twin, through the real pcscd + vpcd stack."""

from __future__ import annotations

import os
import queue
import signal
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
from devices.sscard import PcscCardReader, identity_of
from sim.personas import load_personas, persona
from sim.vcard import NOT_SSCARD, SoftPsam
from tests.wire.conftest import CARD_READER, RESTART_ALLOWED, swap_gap, wait_for

pytestmark = [pytest.mark.wire, pytest.mark.timeout(120)]

READABLE = [p for p in load_personas() if not p.get("needs_sam")]


def reader(**kw) -> PcscCardReader:
    return PcscCardReader(CARD_READER, **kw)


def bound_reader(**kw) -> PcscCardReader:
    """A reader that has read the card in the slot: VERIFY is only ever sent to a card read first."""
    rd = reader(**kw)
    result = rd.read()
    assert isinstance(result, CardReadOk), result
    return rd


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
    rd = reader()
    result = rd.read()
    assert isinstance(result, CardReadFailed) and result.fault is CardFault.NOT_SSCARD
    # no card was read, so there is nothing to check a PIN against
    assert rd.verify_pin("123456").fault is CardFault.NO_CARD


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
    first = bound_reader().verify_pin("000000")
    assert (first.outcome, first.tries_left) == (PinOutcome.WRONG, 2)
    # a new driver instance (e.g. kiosk restarted) sees the card's count, not a fresh one
    second = bound_reader().verify_pin("111111")
    assert (second.outcome, second.tries_left) == (PinOutcome.WRONG, 1)
    assert bound_reader().verify_pin("123456").outcome is PinOutcome.OK
    assert card.chip.tries_left == 3  # a correct PIN resets the chip's counter
    rd = bound_reader()
    for expected in (2, 1):  # a wrong PIN keeps the card bound: the person tries again on the same read
        assert rd.verify_pin("999999").tries_left == expected
    last = rd.verify_pin("999999")
    assert (last.outcome, last.tries_left) == (PinOutcome.BLOCKED, 0)
    assert bound_reader().verify_pin("123456").outcome is PinOutcome.BLOCKED  # the right PIN no longer helps


def test_blocked_persona(vcard):
    vcard("blocked")
    result = bound_reader().verify_pin("654321")
    assert (result.outcome, result.tries_left) == (PinOutcome.BLOCKED, 0)


@pytest.mark.parametrize("style", ["61", "6C"])
def test_pin_in_t0_styles(vcard, style):
    vcard("x_ending", t0_style=style)
    rd = bound_reader()
    assert rd.verify_pin("123456").tries_left == 1  # persona starts with 2 tries
    assert rd.verify_pin("202020").outcome is PinOutcome.OK


def test_no_card_and_no_reader(pcscd):
    swap_gap()
    assert reader().read().fault is CardFault.NO_CARD
    assert reader().media() is MediaStatus.ABSENT
    assert reader().status() is DeviceStatus.ONLINE
    missing = PcscCardReader("No Such Reader 99")
    assert missing.read().fault is CardFault.NO_READER
    assert missing.verify_pin("123456").outcome is PinOutcome.FAILED
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
    probe = vcard("elder")
    rd = bound_reader()
    n_read = probe.apdu_count
    assert rd.verify_pin("123456").outcome is PinOutcome.OK
    n_verify = probe.apdu_count - n_read  # identity, VERIFY, identity again
    probe.remove()
    assert n_verify >= 7
    for index in range(n_verify):
        swap_gap()
        card = vcard("elder", drop_after=n_read + index)
        rd = bound_reader()
        result = rd.verify_pin("123456")
        assert result.outcome is PinOutcome.FAILED, (index, result)
        assert result.fault in (CardFault.REMOVED, CardFault.NO_CARD), (index, result)
        assert card.chip.tries_left == 3
        card.remove()
        # the driver holds nothing of the card that left
        assert rd.verify_pin("123456").fault is CardFault.NO_CARD


A, B = persona("elder"), persona("worker")


@pytest.mark.parametrize("isolate", [True, False], ids=["helper", "in-process"])
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("style", [None, "61"], ids=["plain", "t0-61"])
def test_card_swapped_at_every_apdu_of_read_and_verify(vcard, style, warm, isolate):
    """Card A is read, then B takes its place before APDU number `index` (unseen by pcscd, as a swap
    within one presence poll). The PIN typed is A's or B's (B's: someone trying their own PIN on
    A's data). Never OK for data of a card that is not the one answering; always a value."""
    card = vcard(A, t0_style=style)
    rd = reader(isolate=isolate)
    start = card.apdu_count
    assert isinstance(rd.read(), CardReadOk)
    n_read = card.apdu_count - start
    assert rd.verify_pin(A["pin"]).outcome is PinOutcome.OK
    total = card.apdu_count - start
    for pin_of in (A, B):
        for index in range(total + 1):
            card.swap(A)  # card A again, its PIN counter full
            card.swap_at(card.apdu_count + index, B, warm=warm)
            read = rd.read()
            after_read = card.chip.persona  # in the slot when the read returned
            pin = rd.verify_pin(pin_of["pin"])
            present = card.chip.persona
            where = (pin_of["key"], index, read, pin)
            if isinstance(read, CardReadOk):  # all of it from the card in the slot, none mixed
                assert identity_of(read.data) == identity_of_persona(after_read), where
            else:
                assert read.fault in (CardFault.REMOVED, CardFault.UNREADABLE), where
                assert (pin.outcome, pin.fault) == (PinOutcome.FAILED, CardFault.NO_CARD), where
            if pin.outcome in (PinOutcome.OK, PinOutcome.WRONG):  # an answer only from the card read
                assert isinstance(read, CardReadOk), where
                assert read.data.ssn == present["ssn"], where
                assert (pin.outcome is PinOutcome.OK) == (pin_of is present), where
            else:
                assert (pin.outcome, pin.fault) in (
                    (PinOutcome.FAILED, CardFault.REMOVED),
                    (PinOutcome.FAILED, CardFault.NO_CARD),
                ), where
            if index == 0:  # B was there before the first APDU: everything is B's
                assert isinstance(read, CardReadOk) and read.data.ssn == B["ssn"], where
                assert pin.outcome is (PinOutcome.OK if pin_of is B else PinOutcome.WRONG), where
            elif index >= total:  # no swap
                assert isinstance(read, CardReadOk) and read.data.ssn == A["ssn"], where
                assert pin.outcome is (PinOutcome.OK if pin_of is A else PinOutcome.WRONG), where
            elif index >= n_read:  # swapped during the PIN check
                assert read.data.ssn == A["ssn"], where
                assert (pin.outcome, pin.fault) == (PinOutcome.FAILED, CardFault.REMOVED), where
    # the reader recovers: the card in the slot now is read and checked
    card.swap(B)
    again = rd.read()
    assert isinstance(again, CardReadOk) and again.data.ssn == B["ssn"]
    assert rd.verify_pin(B["pin"]).outcome is PinOutcome.OK


def identity_of_persona(p: dict) -> tuple[str, str, str]:
    return (p["card_id"].upper(), p["card_number"], p["ssn"])


@pytest.mark.parametrize("isolate", [True, False], ids=["helper", "in-process"])
def test_swap_between_read_and_pin_is_reported_as_removal_and_insertion(vcard, isolate):
    """With the watcher running, a swap pcscd never saw ends the old session (CardRemoved) and lets the
    session read the card that is there (CardInserted)."""
    events: queue.Queue = queue.Queue()
    rd = reader(poll_interval=0.1, isolate=isolate)
    rd.start(events.put)
    try:
        assert _next(events, ReaderStatusChanged).status is DeviceStatus.ONLINE
        card = vcard(A, wait=False)
        assert _next(events, CardInserted) == CardInserted(CARD_READER)
        first = rd.read()  # the watcher's prefetch, or a read of its own
        assert isinstance(first, CardReadOk) and first.data.ssn == A["ssn"]
        card.swap(B, warm=True)
        result = rd.verify_pin(B["pin"])
        assert (result.outcome, result.fault) == (PinOutcome.FAILED, CardFault.REMOVED)
        assert card.chip.tries_left == 3  # B's card never saw the PIN: the identity check came first
        assert _next(events, CardRemoved) == CardRemoved(CARD_READER)
        assert _next(events, CardInserted) == CardInserted(CARD_READER)
        second = rd.read()
        assert isinstance(second, CardReadOk) and second.data.ssn == B["ssn"]
        assert rd.verify_pin(B["pin"]).outcome is PinOutcome.OK
    finally:
        rd.stop()


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


def test_helper_process_ending_between_read_and_pin(vcard):
    """The card read lives in the helper process: if it ends, VERIFY reports the card as gone (the
    session starts over) and the next read starts a new helper."""
    vcard("elder")
    rd = bound_reader()
    helper = rd._cmds._proc
    helper.kill()
    helper.wait()
    result = rd.verify_pin("123456")
    assert (result.outcome, result.fault) == (PinOutcome.FAILED, CardFault.REMOVED)
    again = rd.read()
    assert isinstance(again, CardReadOk) and again.data.ssn == persona("elder")["ssn"]
    assert rd._cmds._proc is not helper
    assert rd.verify_pin("123456").outcome is PinOutcome.OK


@pytest.mark.parametrize("isolate", [True, False], ids=["helper", "in-process"])
def test_late_prefetch_does_not_rebind_the_card_the_session_read(vcard, isolate):
    """If the session's read() comes before the watcher's prefetch, the prefetch must not read again:
    a card swapped in between would become the one VERIFY checks against, under the first card's data."""
    card = vcard(A)
    rd = reader(isolate=isolate)
    first = rd.read()
    assert isinstance(first, CardReadOk) and first.data.ssn == A["ssn"]
    card.swap(B, warm=True)
    rd._cmds.prefetch()  # what the watcher does right after CardInserted
    result = rd.verify_pin(B["pin"])
    assert (result.outcome, result.fault) == (PinOutcome.FAILED, CardFault.REMOVED)


def test_stuck_helper_process_times_out_and_is_replaced(vcard):
    vcard("elder")
    rd = bound_reader()
    helper = rd._cmds._proc
    os.kill(helper.pid, signal.SIGSTOP)  # hung, e.g. inside a PC/SC call that never returns
    try:
        result = rd.read(timeout=0.5)
        assert isinstance(result, CardReadFailed) and result.fault is CardFault.TIMEOUT, result
    finally:
        if helper.poll() is None:
            os.kill(helper.pid, signal.SIGCONT)
    assert helper.wait(5) is not None  # the stuck one was ended
    again = rd.read()
    assert isinstance(again, CardReadOk), again
    assert rd.verify_pin("123456").outcome is PinOutcome.OK
