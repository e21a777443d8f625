"""The outbox on its own: encryption at rest, the key file, local numbers, the send rules (backoff, Retry-After,
permanent failures, re-upload on attachment_missing), restarts, and the catalog cache. The backend is a
scripted fake here; tests/e2e/test_outbox_sync.py runs the same over mutual TLS."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3
from pathlib import Path

import pytest

from api.models import AttachmentStored, Filing, RatingStored, ServiceCatalog
from api.patterns import LOCAL_NUMBER_PATTERN
from kiosk import outbox as ob_mod
from kiosk.backend_client import BackendFailure, FailureKind
from kiosk.catalog_cache import CatalogCache
from kiosk.outbox import (
    FAILED,
    PENDING,
    SENT,
    Outbox,
    OutboxCorrupt,
    OutboxFull,
    OutboxKeyError,
    SyncWorker,
    backoff,
    load_key,
    send_item,
    sync_once,
)

NAME = "王秀兰"
SSN = "370102195203140527"
OTHER_SSN = "11010519491231002X"
PHONE = "13912345678"
JPEG = b"\xff\xd8\xff\xe0" + b"MARKER-OF-THE-PHOTO" * 50
DIGEST = hashlib.sha256(JPEG).hexdigest()
NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def filing_answer(local_number: str, n: int = 1) -> Filing:
    return Filing.model_validate({
        "filing_id": f"F-{n:06d}", "local_number": local_number, "service": "jiuye_dengji", "title": "就业登记",
        "status": "received", "handling": "direct", "due_date": "2026-12-08", "receipt_id": f"R-{n}",
        "verify_url": "https://example.invalid/v1/receipts/R-1/verify?sig=abcdefgh",
        "lines": [["办件编号", f"F-{n:06d}"]], "created_at": NOW.isoformat(), "received_at": NOW.isoformat(),
        "replayed": False,
    })


class FakeClient:
    """Answers from scripts: a list per method, consumed in order; when empty, success."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.filing_script: list[BackendFailure] = []
        self.put_script: list[BackendFailure] = []
        self.rating_script: list[BackendFailure] = []
        self.uploaded: set[str] = set()
        self.n = 0

    def put_attachment(self, digest, data, media_type):
        self.calls.append(("put", digest))
        assert hashlib.sha256(data).hexdigest() == digest
        if self.put_script:
            return self.put_script.pop(0)
        self.uploaded.add(digest)
        return AttachmentStored(sha256=digest, size=len(data), media_type=media_type, replayed=False)

    def submit_filing(self, body, key):
        self.calls.append(("filing", key))
        if self.filing_script:
            return self.filing_script.pop(0)
        self.n += 1
        return filing_answer(body.local_number, self.n)

    def submit_rating(self, body, key):
        self.calls.append(("rating", key))
        if self.rating_script:
            return self.rating_script.pop(0)
        return RatingStored(rating_id="RT-1", replayed=False)

    def close(self):
        pass


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def box(tmp_path, clock):
    b = Outbox(tmp_path / "data" / "outbox.sqlite3", tmp_path / "data" / "outbox.key", clock=clock)
    yield b
    b.close()


def put(box: Outbox, *, ssn: str = SSN, attach: bool = False, **kw):
    answers = {"phone": PHONE}
    atts = {}
    if attach:
        answers["photo"] = DIGEST
        atts = {DIGEST: (JPEG, "image/jpeg")}
    return box.put_filing(service=kw.pop("service", "jiuye_dengji"),
                          person={"ssn": ssn, "name": NAME, "credential": "id_card"},
                          answers=answers, attachments=atts, created_at=NOW, **kw)


def on_disk(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())


# --- encryption at rest and the key file ---------------------------------------------------------------


def test_nothing_personal_is_stored_in_plain(box, tmp_path):
    put(box, attach=True)
    put(box, attach=False)
    box.close()
    raw = on_disk(tmp_path / "data")
    for secret in (NAME.encode(), SSN.encode(), PHONE.encode(), b"MARKER-OF-THE-PHOTO"):
        assert secret not in raw


def test_sent_item_keeps_no_personal_ciphertext(box):
    item = put(box, attach=True)
    assert sync_once(box, FakeClient()).sent == 1
    row = box._db.execute("SELECT payload, person_tag, filing_id, state FROM items WHERE key = ?",
                          (item.key,)).fetchone()
    assert row[:2] == (None, None) and row[2:] == ("F-000001", SENT)
    assert box._db.execute("SELECT COUNT(*) FROM attachments").fetchone()[0] == 0
    assert box.get(item.local_number).filing_id == "F-000001"


def test_key_file_is_made_once_0600_and_kept(tmp_path):
    path = tmp_path / "k" / "outbox.key"
    key = load_key(path)
    assert len(key) == 32 and (path.stat().st_mode & 0o777) == 0o600
    assert load_key(path) == key  # read again, never replaced


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "outbox.key"
    load_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(OutboxKeyError, match="chmod 600"):
        Outbox(tmp_path / "o.sqlite3", path)
    assert (path.stat().st_mode & 0o777) == 0o644  # left as it was: a technician decides


def test_key_file_of_wrong_size_is_refused_not_replaced(tmp_path):
    path = tmp_path / "outbox.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(OutboxKeyError, match="not 32"):
        load_key(path)
    assert path.read_bytes() == b"short"


def test_another_key_or_a_lost_key_is_refused(tmp_path, clock):
    b = Outbox(tmp_path / "o.sqlite3", tmp_path / "k1", clock=clock)
    put(b)
    b.close()
    load_key(tmp_path / "k2")  # another valid key (another terminal's)
    with pytest.raises(OutboxKeyError, match="does not match"):
        Outbox(tmp_path / "o.sqlite3", tmp_path / "k2", clock=clock)
    (tmp_path / "k1").unlink()
    with pytest.raises(OutboxKeyError, match="missing"):
        Outbox(tmp_path / "o.sqlite3", tmp_path / "k1", clock=clock)
    assert not (tmp_path / "k1").exists()  # no new key made in its place


def test_corrupt_ciphertext_is_a_clear_error_and_the_item_is_kept(box):
    item = put(box)
    blob = bytearray(box._db.execute("SELECT payload FROM items WHERE key = ?", (item.key,)).fetchone()[0])
    blob[-1] ^= 1
    box._db.execute("UPDATE items SET payload = ? WHERE key = ?", (bytes(blob), item.key))
    with pytest.raises(OutboxCorrupt, match="does not decrypt"):
        box.request_of(item)
    client = FakeClient()
    out = send_item(box, client, item)
    assert out.permanent == "undecryptable" and client.calls == []
    sync_once(box, client)
    kept = box.get(item.local_number)
    assert kept.state == FAILED and "decrypt" in kept.last_error
    assert box._db.execute("SELECT payload FROM items WHERE key = ?", (item.key,)).fetchone()[0] == bytes(blob)


def test_a_value_moved_to_another_row_does_not_decrypt(box):
    a, b = put(box), put(box)
    blob = box._db.execute("SELECT payload FROM items WHERE key = ?", (a.key,)).fetchone()[0]
    box._db.execute("UPDATE items SET payload = ? WHERE key = ?", (blob, b.key))
    with pytest.raises(OutboxCorrupt):
        box.request_of(b)


# --- local numbers, keys, durability -------------------------------------------------------------------


def test_local_number_format_and_uniqueness(box, monkeypatch):
    numbers = {put(box).local_number for _ in range(50)}
    assert len(numbers) == 50
    assert all(re.fullmatch(LOCAL_NUMBER_PATTERN, n) and n.startswith("L20261201-") for n in numbers)
    taken = next(iter(numbers))
    drawn = iter([taken, taken, "L20261201-ZZZZZ2"])
    monkeypatch.setattr(ob_mod, "new_local_number", lambda day: next(drawn))
    assert put(box).local_number == "L20261201-ZZZZZ2"  # a clash is drawn again, never shared


def test_same_key_twice_is_one_item(box):
    a = put(box, key="kiosk-key-0001")
    b = put(box, key="kiosk-key-0001")
    assert a == b and box.counts()[PENDING] == 1


def test_an_attachment_over_300_kb_is_refused_before_queueing(box):
    big = b"\xff\xd8\xff\xe0" + b"x" * (300 * 1024)
    digest = hashlib.sha256(big).hexdigest()
    with pytest.raises(ValueError, match="bytes"):
        box.put_filing(service="jiuye_dengji", person={"ssn": SSN, "name": NAME, "credential": "id_card"},
                       answers={"photo": digest}, attachments={digest: (big, "image/jpeg")}, created_at=NOW)
    assert box.counts()[PENDING] == 0


def test_unsendable_filing_is_refused_before_queueing(box):
    with pytest.raises(ValueError, match="person"):
        put(box, ssn="370102195203140528")  # wrong check digit: the backend would refuse it for ever
    with pytest.raises(ValueError, match="digest"):
        box.put_filing(service="x", person={"ssn": SSN, "name": NAME, "credential": "id_card"}, answers={},
                       attachments={"0" * 64: (JPEG, "image/jpeg")}, created_at=NOW)
    assert box.counts()[PENDING] == 0


def test_full_disk_is_outbox_full_and_nothing_half_written(box):
    put(box)
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")
    big = b"\xff\xd8\xff" + os.urandom(200_000)
    with pytest.raises(OutboxFull, match="磁盘已满"):
        box.put_filing(service="jiuye_dengji", person={"ssn": SSN, "name": NAME, "credential": "id_card"},
                       answers={"photo": hashlib.sha256(big).hexdigest()}, created_at=NOW,
                       attachments={hashlib.sha256(big).hexdigest(): (big, "image/jpeg")})
    assert box.counts()[PENDING] == 1
    assert box._db.execute("SELECT COUNT(*) FROM attachments").fetchone()[0] == 0


def test_restart_resumes(tmp_path, clock):
    b = Outbox(tmp_path / "o.sqlite3", tmp_path / "o.key", clock=clock)
    item = put(b, attach=True)
    assert sync_once(b, offline_client()).unreachable
    b.close()
    b = Outbox(tmp_path / "o.sqlite3", tmp_path / "o.key", clock=clock)
    client = FakeClient()
    report = sync_once(b, client)
    assert (report.sent, report.remaining) == (1, 0)
    assert client.calls == [("put", DIGEST), ("filing", item.key)]
    b.close()


def offline_client() -> FakeClient:
    c = FakeClient()
    c.put_script = [BackendFailure(FailureKind.OFFLINE, code="connection_error")] * 10
    c.filing_script = [BackendFailure(FailureKind.OFFLINE, code="connection_error")] * 10
    return c


def test_pending_is_masked_and_pending_for_finds_the_person(box):
    mine = put(box)
    put(box, ssn=OTHER_SSN)
    views = box.pending()
    assert len(views) == 2
    text = repr([v.as_dict() for v in views])
    assert NAME not in text and SSN not in text and PHONE not in text
    assert [v.local_number for v in box.pending_for(SSN)] == [mine.local_number]


def test_sent_rows_are_forgotten_after_30_days(box, clock):
    item = put(box)
    sync_once(box, FakeClient())
    assert box.result(item.local_number).filing_id == "F-000001"
    clock.t += 2 * 86400
    box.purge()
    assert box.result(item.local_number) is None and box.get(item.local_number).state == SENT
    clock.t += 29 * 86400
    box.purge()
    assert box.get(item.local_number) is None


# --- send rules ----------------------------------------------------------------------------------------


def test_backoff_schedule_grows_to_the_cap_with_jitter():
    lows = [backoff(n, rand=lambda: 0.0) for n in range(1, 12)]
    highs = [backoff(n, rand=lambda: 1.0) for n in range(1, 12)]
    assert highs[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert lows[:3] == [0.5, 1.0, 2.0]
    assert max(highs) == 300.0 and highs[-1] == 300.0 and lows[-1] == 150.0
    assert backoff(10_000) <= 300.0


def test_worker_waits_as_retry_after_asks(box):
    put(box)
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.RATE_LIMITED, code="rate_limited", status=429,
                                           retry_after=120.0)]
    worker = SyncWorker(box, lambda: client)
    assert worker._pass() >= 120.0
    assert box.pending()[0].attempts == 1 and "rate_limited" in box.pending()[0].last_error


def test_worker_backs_off_while_the_backend_is_away(box):
    put(box)
    put(box)
    client = offline_client()
    worker = SyncWorker(box, lambda: client)
    waits = [worker._pass() for _ in range(4)]
    assert all(w > 0 for w in waits) and waits[3] >= 4.0  # 8 s step: at least half of it
    assert len(client.calls) == 4  # one try per pass, oldest first: no storm while away
    assert {c[1] for c in client.calls} == {box.due(ignore_schedule=True)[0].key}


def test_bad_answer_is_retried_later_with_backoff(box, clock):
    item = put(box)
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.BAD_RESPONSE, code="bad_shape", status=200)]
    worker = SyncWorker(box, lambda: client)
    worker._pass()
    assert box.get(item.local_number).next_attempt_at > clock.t
    clock.t += 400
    worker._pass()
    assert box.get(item.local_number).state == SENT


@pytest.mark.parametrize("failure", [
    BackendFailure(FailureKind.NOT_FOUND, code="unknown_service", status=404),
    BackendFailure(FailureKind.REJECTED, code="invalid_request", status=422, fields=("phone",)),
    BackendFailure(FailureKind.SESSION_REFUSED, code="level_too_low", status=403),
    BackendFailure(FailureKind.REJECTED, code="idempotency_conflict", status=409),
    BackendFailure(FailureKind.NOT_FOUND, code="no_card", status=404),
    BackendFailure(FailureKind.REJECTED, code="attachment_invalid", status=422),
    BackendFailure(FailureKind.SESSION_REFUSED, code="person_mismatch", status=403),
])
def test_permanent_refusal_is_never_retried(box, failure):
    item = put(box)
    later = put(box)
    client = FakeClient()
    client.filing_script = [failure]
    report = sync_once(box, client)
    assert (report.sent, report.failed, report.remaining) == (1, 1, 1)
    got = box.get(item.local_number)
    assert got.state == FAILED and failure.code in got.last_error
    assert box.get(later.local_number).state == SENT
    sync_once(box, client)
    assert [c for c in client.calls if c[1] == item.key] == [("filing", item.key)]  # once, only
    assert [v.state for v in box.pending()] == [FAILED]


@pytest.mark.parametrize("failure", [
    BackendFailure(FailureKind.OFFLINE, code="tls_error"),
    BackendFailure(FailureKind.OFFLINE, code="connection_error"),
    BackendFailure(FailureKind.OFFLINE, code="connect_timeout"),
    BackendFailure(FailureKind.SERVER_ERROR, code="offline", status=503),
    BackendFailure(FailureKind.RATE_LIMITED, code="rate_limited", status=429),
    BackendFailure(FailureKind.SESSION_REFUSED, code="certificate_revoked", status=403),
])
def test_away_failures_keep_the_item_waiting(box, failure):
    item = put(box)
    later = put(box)
    client = FakeClient()
    client.filing_script = [failure]
    report = sync_once(box, client)
    assert report.unreachable and report.remaining == 2 and report.sent == 0
    assert box.get(item.local_number).state == PENDING
    assert client.calls == [("filing", item.key)]  # the backend is away: nothing more is tried
    assert sync_once(box, client).sent == 2
    assert box.get(later.local_number).state == SENT


@pytest.mark.parametrize("failure", [
    BackendFailure(FailureKind.TIMEOUT, code="read_timeout"),
    BackendFailure(FailureKind.TIMEOUT, code="deadline"),
    BackendFailure(FailureKind.SERVER_ERROR, code="server_error", status=500),
    BackendFailure(FailureKind.SERVER_ERROR, code=None, status=502),
    BackendFailure(FailureKind.SERVER_ERROR, code=None, status=504),
    BackendFailure(FailureKind.REJECTED, code=None, status=408),
    BackendFailure(FailureKind.NOT_FOUND, code=None, status=404),  # a proxy's, not the backend's
    BackendFailure(FailureKind.REJECTED, code=None, status=405),
    BackendFailure(FailureKind.REJECTED, code=None, status=413),
    BackendFailure(FailureKind.REJECTED, code="body_too_large", status=413),
    BackendFailure(FailureKind.REJECTED, code="invalid_request", status=422),  # names no answer
    BackendFailure(FailureKind.REJECTED, code="http_error", status=400),
    BackendFailure(FailureKind.BAD_RESPONSE, code="bad_shape", status=200),
])
def test_an_item_failure_reschedules_that_item_and_the_rest_go(box, clock, failure):
    item = put(box)
    later = put(box)
    client = FakeClient()
    client.filing_script = [failure]
    report = sync_once(box, client)
    assert not report.unreachable and (report.sent, report.remaining, report.failed) == (1, 1, 0)
    got = box.get(item.local_number)
    assert got.state == PENDING and got.attempts == 1 and got.next_attempt_at > clock.t
    assert box.get(later.local_number).state == SENT
    assert sync_once(box, client).sent == 1


def test_a_422_about_created_at_is_retried_not_dropped(box):
    from kiosk.backend_client import _failure_from_status

    body = b'{"code":"invalid_request","message":"x","fields":[{"loc":["body","created_at"],"type":"created_at_out_of_range"}]}'
    failure = _failure_from_status(422, body)
    assert failure.fields == ()
    item = put(box)
    client = FakeClient()
    client.filing_script = [failure]
    sync_once(box, client)
    assert box.get(item.local_number).state == PENDING


def test_several_items_failing_in_a_row_is_the_backend_away(box):
    items = [put(box) for _ in range(5)]
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.SERVER_ERROR, code="server_error", status=500)] * 3
    report = sync_once(box, client)
    assert report.unreachable and report.sent == 0
    assert client.calls == [("filing", i.key) for i in items[:ob_mod.AWAY_AFTER]]  # then it stops
    assert sync_once(box, client).sent == 5


def test_a_slow_upload_does_not_hold_up_the_filings_behind_it(box, clock):
    """The oldest filing's photo times out on every try: the worker reschedules it and sends the others
    (it used to probe with that one item forever)."""
    photo = put(box, attach=True)
    plain = [put(box) for _ in range(5)]
    client = FakeClient()
    client.put_script = [BackendFailure(FailureKind.TIMEOUT, code="deadline")] * 100
    worker = SyncWorker(box, lambda: client, parallel=2)
    worker._pass()
    assert not worker.away
    assert all(box.get(i.local_number).state == SENT for i in plain)
    got = box.get(photo.local_number)
    assert got.state == PENDING and got.attempts == 1 and got.next_attempt_at > clock.t
    assert [c for c in client.calls if c[0] == "put"] == [("put", DIGEST)]  # once in the pass, not in a loop
    clock.t = got.next_attempt_at
    client.put_script.clear()
    worker._pass()
    assert box.get(photo.local_number).state == SENT


def test_the_worker_calls_the_backend_away_when_several_items_fail(box):
    [put(box) for _ in range(5)]
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.SERVER_ERROR, code="server_error", status=500)] * 100
    worker = SyncWorker(box, lambda: client, parallel=1)
    assert worker._pass() > 0
    assert worker.away and len(client.calls) == ob_mod.AWAY_AFTER
    assert box.counts()[PENDING] == 5


def test_one_item_timing_out_is_not_the_backend_away(box):
    put(box)
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.TIMEOUT, code="read_timeout")]
    worker = SyncWorker(box, lambda: client)
    worker._pass()
    assert not worker.away


# --- two senders at once: the kiosk's worker and `kiosk outbox sync` -------------------------------------------


def test_a_second_sender_with_a_stale_copy_does_not_undo_the_first(tmp_path, clock):
    a = Outbox(tmp_path / "outbox.sqlite3", tmp_path / "outbox.key", clock=clock)  # the kiosk's worker
    b = Outbox(tmp_path / "outbox.sqlite3", tmp_path / "outbox.key", clock=clock)  # `kiosk outbox sync`
    try:
        item = put(a, attach=True)
        stale = b.due(ignore_schedule=True)
        assert [i.key for i in stale] == [item.key]
        client = FakeClient()
        ob_mod._apply(a, item, send_item(a, client, a.due()[0]))
        assert a.get(item.local_number).state == SENT
        out = send_item(b, client, stale[0])  # its payload and attachments are wiped: not "undecryptable"
        ob_mod._apply(b, stale[0], out)
        assert out.gone and out.permanent is None
        assert a.get(item.local_number).state == SENT and a.get(item.local_number).last_error is None
        assert a.result(item.local_number).filing_id == "F-000001"
    finally:
        a.close()
        b.close()


def test_state_changes_only_apply_to_a_pending_item(box, clock):
    item = put(box)
    sync_once(box, FakeClient())
    first = box.result(item.local_number)
    box.mark_failed(item, "rejected:invalid_request:422", ("phone",))
    box.mark_retry(item, "timeout", 60)
    box.mark_attempt(item, "offline")
    got = box.get(item.local_number)
    assert (got.state, got.attempts, got.last_error, got.next_attempt_at) == (SENT, 0, None, 0)
    box.mark_sent(item, filing_answer(item.local_number, 2))  # a late replay keeps the first answer
    assert box.result(item.local_number) == first
    refused = put(box)
    box.mark_failed(refused, "rejected:idempotency_conflict:409")
    box.mark_retry(refused, "timeout", 60)
    assert box.get(refused.local_number).state == FAILED
    assert box.get(refused.local_number).last_error == "rejected:idempotency_conflict:409"


def test_a_sender_racing_the_wipe_of_an_attachment_is_a_no_op(tmp_path, clock):
    a = Outbox(tmp_path / "outbox.sqlite3", tmp_path / "outbox.key", clock=clock)
    b = Outbox(tmp_path / "outbox.sqlite3", tmp_path / "outbox.key", clock=clock)
    try:
        item = put(a, attach=True)

        class SendsFirst(FakeClient):
            """While b uploads, a (the other process) files the same item, and so wipes its attachments."""

            def put_attachment(self, digest, data, media_type):
                ob_mod._apply(a, item, send_item(a, FakeClient(), item))
                return super().put_attachment(digest, data, media_type)

        out = send_item(b, SendsFirst(), item)
        ob_mod._apply(b, item, out)
        assert a.get(item.local_number).state == SENT
    finally:
        a.close()
        b.close()


# --- the fields a refusal names ------------------------------------------------------------------------------


def test_the_fields_of_a_422_are_kept_with_the_refused_item(box):
    from kiosk.backend_client import _failure_from_status

    body = (b'{"code":"invalid_request","message":"x","fields":[{"loc":["body","answers","phone"],"type":"pattern"},'
            b'{"loc":["body","answers","phone"],"type":"minLength"},{"loc":["body","answers","hukou"],"type":"oneOf"},'
            b'{"loc":["body","created_at"],"type":"x"}]}')
    failure = _failure_from_status(422, body)
    assert failure.code == "invalid_request" and failure.fields == ("phone", "hukou")
    item = put(box)
    client = FakeClient()
    client.filing_script = [failure]
    sync_once(box, client)
    assert box.get(item.local_number).state == FAILED
    assert box.refused_fields(item.local_number) == ("phone", "hukou")
    assert box.refused_fields("L20261201-AAAAAA") == ()
    other = put(box)
    client.filing_script = [BackendFailure(FailureKind.NOT_FOUND, code="unknown_service", status=404)]
    sync_once(box, client)
    assert box.refused_fields(other.local_number) == ()


def test_an_outbox_of_an_older_version_gets_the_new_column(tmp_path, clock):
    path = tmp_path / "outbox.sqlite3"
    b = Outbox(path, tmp_path / "outbox.key", clock=clock)
    item = put(b)
    b._db.execute("ALTER TABLE items DROP COLUMN refused_fields")
    b.close()
    b = Outbox(path, tmp_path / "outbox.key", clock=clock)
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.REJECTED, code="invalid_request", status=422,
                                           fields=("phone",))]
    sync_once(b, client)
    assert b.refused_fields(item.local_number) == ("phone",)
    b.close()


def test_attachment_missing_uploads_again_and_retries(box):
    item = put(box, attach=True)
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.REJECTED, code="attachment_missing", status=409)]
    assert sync_once(box, client).sent == 1
    assert client.calls == [("put", DIGEST), ("filing", item.key), ("put", DIGEST), ("filing", item.key)]


def test_uploaded_attachments_are_not_sent_again(box):
    item = put(box, attach=True)
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.OFFLINE, code="connection_error")]
    sync_once(box, client)
    sync_once(box, client)
    assert client.calls == [("put", DIGEST), ("filing", item.key), ("filing", item.key)]


def test_ratings_go_the_same_way(box):
    r = box.put_rating(service="jiuye_dengji", satisfaction="dissatisfied", reasons=("too_slow",),
                       created_at=NOW, filing_ref="L20261201-AAAAAA")
    client = FakeClient()
    client.rating_script = [BackendFailure(FailureKind.SERVER_ERROR, status=500)]
    report = sync_once(box, client)
    assert (report.sent, report.remaining) == (0, 1) and box.get(r.local_number).state == PENDING
    assert sync_once(box, client).sent == 1
    assert box.get(r.local_number).filing_id == "RT-1"
    with pytest.raises(ValueError):
        box.put_rating(service="jiuye_dengji", satisfaction="so-so", created_at=NOW)


def test_a_rating_the_backend_refuses_as_invalid_is_dropped_not_retried_forever(box):
    r = box.put_rating(service="jiuye_dengji", satisfaction="satisfied", created_at=NOW)
    client = FakeClient()
    client.rating_script = [BackendFailure(FailureKind.REJECTED, code="invalid_request", status=422)]
    sync_once(box, client)
    assert box.get(r.local_number).state == FAILED


def test_worker_thread_sends_and_wait_for_returns_the_filing(box):
    client = FakeClient()
    results = []
    worker = SyncWorker(box, lambda: client, on_result=lambda item, got, err: results.append((item.key, err)))
    worker.start()
    try:
        item = put(box)
        worker.kick()
        got = worker.wait_for(item.local_number, timeout=30)
        assert isinstance(got, Filing) and got.local_number == item.local_number
        assert results == [(item.key, None)]
        assert worker.wait_for(item.local_number, timeout=0) == got  # again, after it was sent
    finally:
        worker.stop()


def test_wait_for_a_refused_item_returns_none(box):
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.NOT_FOUND, code="unknown_service", status=404)]
    worker = SyncWorker(box, lambda: client).start()
    try:
        item = put(box)
        worker.kick()
        assert worker.wait_for(item.local_number, timeout=30) is None
        assert box.get(item.local_number).state == FAILED
    finally:
        worker.stop()


def test_database_is_wal_and_synchronous_full(box):
    assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert (box.path.stat().st_mode & 0o777) == 0o600
    put(box)
    for side in ("-wal", "-shm"):  # they hold the same rows as the file
        assert (Path(f"{box.path}{side}").stat().st_mode & 0o777) == 0o600
    with sqlite3.connect(box.path) as other:  # another process (kiosk outbox list) sees committed items
        put(box)
        assert other.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 2


# --- catalog cache ------------------------------------------------------------------------------------


class CatalogClient:
    def __init__(self, answers):
        self.answers = list(answers)
        self.asked: list[str | None] = []

    def services(self, etag=None):
        self.asked.append(etag)
        return self.answers.pop(0)


def test_catalog_cache_works_offline_and_uses_etags(tmp_path):
    cache = CatalogCache(tmp_path / "cat")
    assert cache.load() == []
    services = [{"key": "jiuye_dengji", "title": "就业登记"}]
    offline = BackendFailure(FailureKind.OFFLINE, code="connection_error")
    client = CatalogClient([offline, (ServiceCatalog(services=services), '"v1"'), (None, '"v1"'), offline])
    assert cache.refresh(client) == []
    assert cache.refresh(client) == services
    assert cache.refresh(client) == services  # 304: the cached one
    assert cache.refresh(client) == services  # offline: the cached one
    assert client.asked == [None, None, '"v1"', '"v1"']
    assert CatalogCache(tmp_path / "cat").load() == services  # survives a restart
    assert not [p for p in (tmp_path / "cat").iterdir() if p.name != "catalog.json"]  # no temp files left


def test_catalog_cache_that_is_damaged_loads_empty(tmp_path):
    (tmp_path / "catalog.json").write_text("{not json")
    assert CatalogCache(tmp_path).load() == []
