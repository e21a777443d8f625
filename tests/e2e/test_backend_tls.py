"""The kiosk's backend client against the real reference backend: HTTPS on 127.0.0.1, mutual TLS, demo CA."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import time
import uuid
from decimal import Decimal

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import NameOID

from backend.db import Database
from backend.pki import ensure_demo_pki, issue_client_cert, write_ca
from backend.server import start_server
from kiosk.backend_client import (
    BackendClient,
    BackendFailure,
    ECardPerson,
    FailureKind,
    FilingRecord,
    FilingStatus,
    PensionStatus,
    ReceiptRecord,
    ReceiptVerification,
)

pytestmark = pytest.mark.timeout(60)

ELDER = "370102195203140527"
YOUNG = "110105200306150829"  # no pension record
# The server lives for the whole module and a loss report suspends the card for good: one person per test.
GEN3 = "440305196507221214"
BLOCKED = "510122194901010022"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("backend"), slow_seconds=3.0)
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _online(server):
    server.set_mode("online")
    server.reset_counts()
    yield
    server.set_mode("online")


def make_client(server, **kw) -> BackendClient:
    args = dict(connect_timeout=1.0, read_timeout=1.0, retries=2, backoff_factor=0.01)
    args.update(kw)
    return BackendClient(server.url, server.ca_path, server.client_cert, server.client_key, **args)


@pytest.fixture
def client(server):
    with make_client(server) as c:
        yield c


def receipt_args(key: str) -> dict:
    return dict(
        idempotency_key=key,
        terminal_id="demo-terminal-01",
        site_id="370102-001",
        service="pension_query",
        ssn=ELDER,
        summary={"title": "养老金查询"},
        created_at=dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    )


# --- happy path -------------------------------------------------------------------------------------------


def test_happy_path(server, client):
    assert server.url.startswith("https://127.0.0.1:")
    assert client.health() is True

    p = client.pension(ELDER)
    assert isinstance(p, PensionStatus)
    assert p.receiving is True and p.monthly_amount == Decimal("238.50")
    assert p.account_balance == Decimal("7532.40")
    assert len(p.payments) == 12 and all(x.amount == Decimal("238.50") for x in p.payments)
    assert p.certification_due == dt.date(2027, 3, 31)

    rec = client.create_receipt(**receipt_args(str(uuid.uuid4())))
    assert isinstance(rec, ReceiptRecord) and rec.replayed is False
    assert rec.verify_url.startswith(f"{server.url}/v1/receipts/{rec.receipt_id}/verify?sig=")

    v = client.verify_receipt(rec.verify_url)
    assert isinstance(v, ReceiptVerification)
    assert v.genuine is True and v.receipt_id == rec.receipt_id
    assert v.name_masked == "王*兰" and v.id_masked == "3701**********0527"
    assert v.site_id == "370102-001" and v.terminal_id == "demo-terminal-01"


def test_idempotent_receipt_creation_over_tls(server, client):
    key = str(uuid.uuid4())
    first = client.create_receipt(**receipt_args(key))
    second = client.create_receipt(**receipt_args(key))
    assert isinstance(first, ReceiptRecord) and isinstance(second, ReceiptRecord)
    assert first.receipt_id == second.receipt_id and second.replayed is True
    assert Database(server.db_path).count_receipts(key) == 1


def test_lost_answer_is_retried_and_still_one_receipt(server, client):
    # The server commits the row but its answer is lost: the client's retry gets the same receipt.
    key = str(uuid.uuid4())
    server.fail_next(1, after_processing=True)
    rec = client.create_receipt(**receipt_args(key))
    assert isinstance(rec, ReceiptRecord) and rec.replayed is True
    assert server.request_count("/v1/receipts", "POST") == 2
    assert Database(server.db_path).count_receipts(key) == 1


def test_transport_debug_logs_hold_no_id_number(client, caplog):
    caplog.set_level(logging.DEBUG)
    assert isinstance(client.pension(ELDER), PensionStatus)
    lines = [r.getMessage() for r in caplog.records]
    assert any("/v1/pension/{ssn}" in line for line in lines)  # urllib3 logged the request line ...
    assert not any(ELDER in line for line in lines)  # ... without the ID number


def test_verify_forged_url(server, client):
    rec = client.create_receipt(**receipt_args(str(uuid.uuid4())))
    assert isinstance(rec, ReceiptRecord)
    url, sig = rec.verify_url.split("?sig=")
    forged = f"{url}?sig={'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    v = client.verify_receipt(forged)
    assert isinstance(v, ReceiptVerification) and v.genuine is False and v.name_masked is None
    foreign = client.verify_receipt(rec.verify_url.replace("127.0.0.1", "evil.example"))
    assert isinstance(foreign, BackendFailure) and foreign.code == "foreign_url"
    assert server.request_count("/v1/receipts", "GET") == 1  # the foreign URL was never fetched


def test_verify_page_for_a_phone(server):
    # A phone has no client certificate; over this mTLS listener we prove the page with one.
    with make_client(server) as c:
        rec = c.create_receipt(**receipt_args(str(uuid.uuid4())))
    assert isinstance(rec, ReceiptRecord)
    r = requests.get(
        rec.verify_url,
        headers={"Accept": "text/html"},
        verify=str(server.ca_path),
        cert=(str(server.client_cert), str(server.client_key)),
        timeout=(1, 2),
    )
    assert r.status_code == 200 and "回执真实有效" in r.text and "王*兰" in r.text


def test_ecard_resolve(server, client):
    r = requests.get(
        f"{server.url}/v1/demo/ecard-code/worker",
        verify=str(server.ca_path),
        cert=(str(server.client_cert), str(server.client_key)),
        timeout=(1, 2),
    )
    code = r.json()["code"]
    person = client.resolve_ecard(code)
    assert isinstance(person, ECardPerson) and person.ssn == "41132219780901441X" and person.name == "李建国"
    assert "李建国" not in repr(person) and "41132219780901441X" not in repr(person)
    unknown = client.resolve_ecard(code[:-1] + ("A" if code[-1] != "A" else "B"))
    assert isinstance(unknown, BackendFailure) and unknown.kind == FailureKind.NOT_FOUND
    assert unknown.code == "ecard_unknown"


# --- security ---------------------------------------------------------------------------------------------


def test_client_without_client_cert_is_refused(server):
    c = BackendClient(server.url, server.ca_path, None, None, connect_timeout=1, read_timeout=1, retries=0)
    got = c.pension(ELDER)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.OFFLINE
    assert server.request_count() == 0  # refused in the TLS handshake, the app never saw it
    # The same at the socket level: the server demands a certificate and drops us.
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if not tls.recv(1024):
                    raise ConnectionError("closed without an answer")


def test_client_cert_from_another_ca_is_refused(server, tmp_path):
    write_ca(tmp_path / "rogue")
    cert, key = issue_client_cert(tmp_path / "rogue", "rogue-terminal")
    c = BackendClient(server.url, server.ca_path, cert, key, connect_timeout=1, read_timeout=1, retries=0)
    got = c.health()
    assert got is False
    assert server.request_count() == 0


def test_wrong_ca_pinned_is_refused(server, tmp_path):
    rogue_ca, _ = write_ca(tmp_path / "other")
    c = BackendClient(
        server.url, rogue_ca, server.client_cert, server.client_key, connect_timeout=1, read_timeout=1
    )
    got = c.pension(ELDER)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.OFFLINE and got.code == "tls_error"
    assert server.request_count() == 0


def test_demo_pki_is_idempotent_and_chains(tmp_path):
    first = ensure_demo_pki(tmp_path / "pki", terminal_id="T-0042")
    files = [first.ca_cert, first.ca_key, first.server_cert, first.server_key, first.client_cert, first.client_key]
    before = {f: f.read_bytes() for f in files}
    second = ensure_demo_pki(tmp_path / "pki", terminal_id="T-0042")
    assert second == first and all(f.read_bytes() == before[f] for f in files)
    assert oct(first.client_key.stat().st_mode & 0o777) == "0o600"
    ca = x509.load_pem_x509_certificate(first.ca_cert.read_bytes())
    server_cert = x509.load_pem_x509_certificate(first.server_cert.read_bytes())
    client_cert = x509.load_pem_x509_certificate(first.client_cert.read_bytes())
    server_cert.verify_directly_issued_by(ca)
    client_cert.verify_directly_issued_by(ca)
    sans = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert client_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "T-0042"


def test_plain_http_is_refused(server):
    http_url = server.url.replace("https://", "http://")
    with pytest.raises(ValueError, match="http://"):
        BackendClient(http_url, server.ca_path, server.client_cert, server.client_key)
    with pytest.raises(ValueError, match="ca_path"):
        BackendClient(server.url, None, server.client_cert, server.client_key)


# --- failure kinds ----------------------------------------------------------------------------------------


def test_unknown_person_is_not_found(client):
    got = client.pension(YOUNG)
    assert isinstance(got, BackendFailure)
    assert (got.kind, got.code, got.status) == (FailureKind.NOT_FOUND, "no_record", 404)


def test_offline_mode_refuses_connections_then_recovers(server, client):
    assert client.health() is True  # leaves a kept-alive connection in the pool
    server.set_mode("offline")
    started = time.monotonic()
    got = client.pension(ELDER)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.OFFLINE
    assert time.monotonic() - started < 3
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    server.set_mode("online")
    assert isinstance(client.pension(ELDER), PensionStatus)


def test_stopped_server_is_offline(tmp_path):
    srv = start_server(tmp_path / "b2")
    c = BackendClient(srv.url, srv.ca_path, srv.client_cert, srv.client_key, connect_timeout=1, read_timeout=1)
    assert c.health() is True
    srv.stop()
    got = c.pension(ELDER)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.OFFLINE
    with pytest.raises(RuntimeError):
        srv.set_mode("online")  # stopped for good


def test_slow_server_is_timeout(server):
    server.set_mode("slow", slow_seconds=2.0)
    with make_client(server, read_timeout=0.3, retries=0) as c:
        started = time.monotonic()
        got = c.pension(ELDER)
        elapsed = time.monotonic() - started
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.TIMEOUT
    assert elapsed < 1.5


def test_error_mode_is_server_error_after_retries(server, client):
    server.set_mode("error")
    got = client.pension(ELDER)
    assert isinstance(got, BackendFailure)
    assert (got.kind, got.code, got.status) == (FailureKind.SERVER_ERROR, "server_error", 500)
    assert server.request_count("/v1/pension", "GET") == 3  # 1 + retries=2


def test_transient_error_is_retried_to_success(server, client):
    server.fail_next(1)
    got = client.pension(ELDER)
    assert isinstance(got, PensionStatus)
    assert server.request_count("/v1/pension", "GET") == 2


def test_read_timeout_on_get_is_retried(server):
    server.set_mode("slow", slow_seconds=2.0)
    with make_client(server, read_timeout=0.3, retries=1) as c:
        got = c.pension(ELDER)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.TIMEOUT
    assert server.request_count("/v1/pension", "GET") == 2


def test_non_idempotent_post_is_not_retried(server, client):
    server.set_mode("error")
    got = client.resolve_ecard("ESSC1.x.y")
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.SERVER_ERROR
    assert server.request_count("/v1/ecard/resolve", "POST") == 1
    server.reset_counts()
    got = client.create_receipt(**receipt_args(str(uuid.uuid4())))
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.SERVER_ERROR
    assert server.request_count("/v1/receipts", "POST") == 3  # receipts carry an Idempotency-Key


# --- filing: 社保卡临时挂失 --------------------------------------------------------------------------------


def loss_args(key: str, ssn: str) -> dict:
    return dict(
        idempotency_key=key,
        terminal_id="demo-terminal-01",
        site_id="370102-001",
        ssn=ssn,
        credential="id_card",
        created_at=dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    )


def test_card_loss_happy_path_over_tls(server, client):
    f = client.report_card_loss(**loss_args(str(uuid.uuid4()), GEN3), name="赵德明")
    assert isinstance(f, FilingRecord)
    assert (f.status, f.card_status, f.replayed) == ("accepted", "temporarily_suspended", False)
    assert f.verify_url.startswith(f"{server.url}/v1/receipts/{f.receipt_id}/verify?sig=")
    assert ("挂失状态", "已临时挂失") in f.lines
    assert Database(server.db_path).card_status(GEN3)[::2] == ("temporarily_suspended", f.filing_id)

    v = client.verify_receipt(f.verify_url)
    assert isinstance(v, ReceiptVerification) and v.genuine is True
    assert (v.service, v.title, v.name_masked) == ("card_loss", "社保卡临时挂失", "赵*明")

    s = client.filing_status(f.filing_id)
    assert isinstance(s, FilingStatus) and (s.filing_id, s.type, s.status) == (f.filing_id, "card_loss", "accepted")
    assert s.created_at == f.created_at

    again = client.report_card_loss(**loss_args(str(uuid.uuid4()), GEN3))
    assert isinstance(again, FilingRecord) and again.status == "already_reported"
    assert again.filing_id == f.filing_id and again.receipt_id == f.receipt_id
    assert Database(server.db_path).count_filings(GEN3) == 1


def test_card_loss_lost_answer_is_retried_and_one_filing(server, client):
    # The server commits the filing but its answer is lost: the retry with the same key gets that filing.
    key = str(uuid.uuid4())
    server.fail_next(1, after_processing=True)
    f = client.report_card_loss(**loss_args(key, BLOCKED))
    assert isinstance(f, FilingRecord)
    assert (f.status, f.replayed) == ("accepted", True)
    assert server.request_count("/v1/filings/card-loss", "POST") == 2
    db = Database(server.db_path)
    assert db.count_filings(BLOCKED) == 1
    assert db.card_status(BLOCKED)[2] == f.filing_id
    assert db.receipt(f.receipt_id) is not None and db.receipt(f.receipt_id).service == "card_loss"


def test_card_loss_failures_over_tls(server, client):
    got = client.report_card_loss(**loss_args(str(uuid.uuid4()), "522732198811230424"))  # ID card, no SSC
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.NOT_FOUND, "no_card")
    got = client.filing_status("F20250310-0000000000")
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.NOT_FOUND, "unknown_filing")
    server.set_mode("error")
    got = client.report_card_loss(**loss_args(str(uuid.uuid4()), YOUNG))
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.SERVER_ERROR
    assert server.request_count("/v1/filings/card-loss", "POST") == 1 + 3  # 1 + retries=2
    assert Database(server.db_path).count_filings(YOUNG) == 0
