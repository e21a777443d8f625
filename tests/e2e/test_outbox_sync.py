"""The outbox against a filing backend over real mutual TLS (tests/e2e/filing_stub.py): lost answers, outages,
attachment uploads resumed, Retry-After, the worker thread, and the catalog's ETag."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from api.models import Filing
from kiosk.backend_client import BackendClient, BackendFailure, FailureKind
from kiosk.catalog_cache import CatalogCache
from kiosk.outbox import FAILED, PENDING, SENT, Outbox, SyncWorker, sync_once

PERSON = {"ssn": "370102195203140527", "name": "王秀兰", "credential": "id_card"}
NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def jpeg(tag: bytes) -> tuple[str, bytes]:
    data = b"\xff\xd8\xff\xe0" + tag * 100
    return hashlib.sha256(data).hexdigest(), data


@pytest.fixture
def make_client(stub):
    clients = []

    def make() -> BackendClient:
        c = BackendClient(stub.url, stub.pki.ca_cert, stub.pki.client_cert, stub.pki.client_key,
                          retries=0, connect_timeout=2, read_timeout=5, deadline=10)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def box(tmp_path):
    b = Outbox(tmp_path / "kiosk" / "outbox.sqlite3", tmp_path / "kiosk" / "outbox.key")
    yield b
    b.close()


def put(box, attachments=(), service="jiuye_dengji"):
    answers = {"phone": "13912345678"}
    atts = {}
    for i, (digest, data) in enumerate(attachments):
        answers[f"photo{i}"] = digest
        atts[digest] = (data, "image/jpeg")
    return box.put_filing(service=service, person=PERSON, answers=answers, attachments=atts, created_at=NOW)


def test_a_lost_answer_is_retried_and_never_duplicates(stub, make_client, box):
    items = [put(box) for _ in range(3)]
    client = make_client()
    stub.stub.fail_next(1, after_processing=True)  # the backend files the first one, the answer is lost
    report = sync_once(box, client)
    assert not report.unreachable and (report.sent, report.remaining) == (2, 1)  # the others did not wait
    assert box.get(items[0].local_number).state == PENDING  # filed, but we do not know it yet
    assert items[0].local_number in [n for n, _ in stub.stub.filings()]
    report = sync_once(box, client)
    assert (report.sent, report.remaining) == (1, 0)
    filed = stub.stub.filings()
    assert sorted(n for n, _ in filed) == sorted(i.local_number for i in items)  # each once
    assert {k for _, k in filed} == {i.key for i in items}
    first = box.result(items[0].local_number)
    assert first.replayed and first.local_number == items[0].local_number


def test_an_interrupted_attachment_upload_is_resumed(stub, make_client, box):
    a, b = jpeg(b"A"), jpeg(b"B")
    item = put(box, attachments=[a, b])
    client = make_client()
    stub.stub.fail_next(1, skip=1)  # the first upload goes through, the second fails
    report = sync_once(box, client)
    assert (report.sent, report.remaining) == (0, 1)
    assert len(box.attachments_to_upload(item)) == 1  # the first is known to be there
    assert stub.stub.filings() == []  # never half-filed: no filing before all its attachments
    stub.stub.counts.clear()
    assert sync_once(box, client).sent == 1
    assert stub.stub.counts == {"PUT /v1/attachments": 1, "POST /v1/filings": 1}
    assert stub.stub.attachments() == {a[0], b[0]}


def test_attachments_the_backend_lost_are_uploaded_again(stub, make_client, box):
    a = jpeg(b"C")
    item = put(box, attachments=[a])
    client = make_client()
    assert client.put_attachment(*a, "image/jpeg").sha256 == a[0]
    stub.stub.forget_attachments_once = True  # 409 attachment_missing on the filing
    box.mark_uploaded(item, a[0])
    stub.stub.counts.clear()
    assert sync_once(box, client).sent == 1
    assert stub.stub.counts == {"POST /v1/filings": 2, "PUT /v1/attachments": 1}
    assert box.get(item.local_number).state == SENT


def test_backend_down_then_back_with_the_worker(stub, make_client, box):
    stub.stub.down, stub.stub.retry_after = True, "1"
    client = make_client()
    got = client.submit_filing(box.request_of(put(box)), "some-key-0001")
    assert isinstance(got, BackendFailure) and got.status == 503 and got.retry_after == 1.0
    report = sync_once(box, client)
    assert report.unreachable and box.pending()[0].state == PENDING and "503" in box.pending()[0].last_error
    stub.stub.down = False
    results = []
    worker = SyncWorker(box, make_client, on_result=lambda item, answer, err: results.append(item.local_number))
    worker.start()
    try:
        item = put(box)
        worker.kick()
        answer = worker.wait_for(item.local_number, timeout=30)
        assert isinstance(answer, Filing) and answer.local_number == item.local_number
    finally:
        worker.stop()
    assert box.counts()[PENDING] == 0 and len(results) == 2


def test_a_poison_filing_does_not_hold_up_the_others_with_the_worker(stub, make_client, box):
    """The backend answers 500 to the oldest filing every time: the worker reschedules it and sends the rest."""
    poison = put(box)
    others = [put(box) for _ in range(3)]
    stub.stub.fail_next(1)
    worker = SyncWorker(box, make_client)
    worker._pass()
    assert not worker.away
    assert all(box.get(i.local_number).state == SENT for i in others)
    assert box.get(poison.local_number).state == PENDING and box.get(poison.local_number).attempts == 1


def test_a_backend_that_is_not_listening_is_unreachable_and_the_outbox_waits(stub, make_client, box):
    item = put(box)
    client = make_client()
    stub.stop()
    report = sync_once(box, client)
    assert report.unreachable and report.remaining == 1
    assert box.get(item.local_number).last_error.startswith("offline")
    stub.start()  # the same port again
    assert sync_once(box, make_client()).sent == 1
    assert [n for n, _ in stub.stub.filings()] == [item.local_number]


def test_a_refused_filing_fails_for_good_and_the_rest_go(stub, make_client, box):
    bad = put(box, service="unknown_thing")
    good = put(box)
    report = sync_once(box, make_client())
    assert (report.sent, report.failed) == (1, 1)
    assert box.get(bad.local_number).state == FAILED and "unknown_service" in box.get(bad.local_number).last_error
    assert box.get(good.local_number).state == SENT


def test_ratings_over_the_wire(stub, make_client, box):
    r = box.put_rating(service="jiuye_dengji", satisfaction="satisfied", created_at=NOW)
    stub.stub.fail_next(1, after_processing=True)
    client = make_client()
    assert sync_once(box, client).remaining == 1
    assert sync_once(box, client).sent == 1
    assert box.get(r.local_number).filing_id.startswith("RT-")


def test_catalog_cache_with_etag_over_the_wire(stub, make_client, tmp_path):
    cache = CatalogCache(tmp_path / "cat")
    client = make_client()
    services = cache.refresh(client)
    assert [s["key"] for s in services] == ["jiuye_dengji"] and cache.etag == '"cat-1"'
    stub.stub.counts.clear()
    assert cache.refresh(client) == services  # 304
    stub.stop()
    assert cache.refresh(client) == services  # offline
    assert CatalogCache(tmp_path / "cat").load() == services


def test_client_refuses_to_send_an_attachment_that_is_not_what_it_says(make_client):
    digest, data = jpeg(b"D")
    client = make_client()
    for args in [(digest, data + b"x", "image/jpeg"), (digest, data, "text/plain"), ("nothex", data, "image/jpeg")]:
        got = client.put_attachment(*args)
        assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.REJECTED, "attachment_invalid")
