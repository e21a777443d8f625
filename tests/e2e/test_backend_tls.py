"""The kiosk's backend client against the real reference backend: HTTPS on 127.0.0.1, mutual TLS, demo CA,
bearer sessions, the public verify listener."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import uuid
from decimal import Decimal

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import NameOID

from api.enums import Credential, FilingState, VerifyReason
from api.models import CardLossFiling, FilingSummary, Pension, Receipt, SessionOpened, Verification
from backend.db import Database
from backend.pki import ensure_demo_pki, issue_client_cert, write_ca
from backend.server import start_server
from kiosk.backend_client import BackendClient, BackendFailure, FailureKind

pytestmark = pytest.mark.timeout(90)

ELDER = "370102195203140527"
YOUNG = "110105200306150829"  # no pension record
# The server lives for the whole module and a loss report suspends the card for good: one person per test.
GEN3 = "440305196507221214"
BLOCKED = "510122194901010022"
NO_SSC = "522732198811230424"  # a valid ID number with no social-security card on file


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # The session-opening limit is tested on a server of its own; here every test opens freely.
    srv = start_server(tmp_path_factory.mktemp("backend"), slow_seconds=3.0, demo=True, session_burst=10_000)
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _online(server):
    server.set_mode("online")
    server.reset_counts()
    yield
    server.set_mode("online")


def make_client(server, **kw) -> BackendClient:
    args = dict(connect_timeout=1.0, read_timeout=1.0, retries=2, backoff_factor=0.01,
                receipt_base_url=server.verify_url)
    args.update(kw)
    return BackendClient(server.url, server.ca_path, server.client_cert, server.client_key, **args)


@pytest.fixture
def client(server):
    with make_client(server) as c:
        yield c


def token_for(client: BackendClient, ssn: str = ELDER, credential: Credential = Credential.SSCARD_PIN) -> str:
    opened = client.open_session(credential, ssn=ssn)
    assert isinstance(opened, SessionOpened), opened
    return opened.token


def demo_code(server, persona: str = "worker") -> str:
    r = requests.get(f"{server.url}/v1/demo/ecard-code/{persona}", verify=str(server.ca_path),
                     cert=(str(server.client_cert), str(server.client_key)), timeout=(1, 2))
    return r.json()["code"]


# --- happy path -------------------------------------------------------------------------------------------


def test_happy_path(server, client):
    assert server.url.startswith("https://127.0.0.1:") and server.verify_url.startswith("https://127.0.0.1:")
    assert client.health() is True

    opened = client.open_session(Credential.SSCARD_PIN, ssn=ELDER, name="王秀兰")
    assert isinstance(opened, SessionOpened) and opened.person.name == "王秀兰"
    p = client.pension(opened.token)
    assert isinstance(p, Pension)
    assert p.receiving is True and p.monthly_amount == Decimal("238.50")
    assert p.account_balance == Decimal("7532.40")
    assert len(p.payments) == 12 and all(x.amount == Decimal("238.50") for x in p.payments)
    assert p.certification_due == dt.date(2027, 3, 31)

    rec = client.create_receipt(opened.token, idempotency_key=str(uuid.uuid4()), service="pension_query",
                                created_at=now())
    assert isinstance(rec, Receipt) and rec.replayed is False
    assert ("月领取金额", "238.50元") in rec.lines  # written by the backend from its own answer
    assert rec.verify_url.startswith(f"{server.verify_url}/v1/receipts/{rec.receipt_id}/verify?sig=")
    assert client.is_our_receipt(rec.verify_url)

    v = client.verify_receipt(rec.verify_url)  # fetched from the mTLS listener, same path
    assert isinstance(v, Verification)
    assert v.genuine is True and v.receipt_id == rec.receipt_id and v.reason is VerifyReason.OK
    assert v.name_masked == "王*兰" and v.id_masked == "3701**********0527"
    assert v.terminal_id == server.terminal_id and v.site_id == server.site_id

    assert client.close_session(opened.token) is None
    dead = client.pension(opened.token)
    assert isinstance(dead, BackendFailure)
    assert (dead.kind, dead.code) == (FailureKind.SESSION_REFUSED, "token_invalid")


def test_no_receipt_without_an_answer_to_vouch_for(client):
    token = token_for(client)
    got = client.create_receipt(token, idempotency_key=str(uuid.uuid4()), service="pension_query", created_at=now())
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.REJECTED, "nothing_to_vouch")


def test_no_record_is_vouched_for_too(client):
    token = token_for(client, YOUNG)
    got = client.pension(token)
    assert isinstance(got, BackendFailure) and (got.kind, got.code, got.status) == (
        FailureKind.NOT_FOUND, "no_record", 404)
    rec = client.create_receipt(token, idempotency_key=str(uuid.uuid4()), service="pension_query", created_at=now())
    assert isinstance(rec, Receipt) and rec.lines == [("查询结果", "暂无养老保险参保记录")]


def test_idempotent_receipt_creation_over_tls(server, client):
    token = token_for(client)
    assert isinstance(client.pension(token), Pension)
    key, when = str(uuid.uuid4()), now()
    first = client.create_receipt(token, idempotency_key=key, service="pension_query", created_at=when)
    second = client.create_receipt(token, idempotency_key=key, service="pension_query", created_at=when)
    assert isinstance(first, Receipt) and isinstance(second, Receipt)
    assert first.receipt_id == second.receipt_id and second.replayed is True
    assert Database(server.db_path).count_receipts(key) == 1


def test_lost_answer_is_retried_and_still_one_receipt(server, client):
    # The server commits the row but its answer is lost: the client's retry gets the same receipt.
    token = token_for(client)
    assert isinstance(client.pension(token), Pension)
    key = str(uuid.uuid4())
    server.reset_counts()
    server.fail_next(1, after_processing=True)
    rec = client.create_receipt(token, idempotency_key=key, service="pension_query", created_at=now())
    assert isinstance(rec, Receipt) and rec.replayed is True
    assert server.request_count("/v1/receipts", "POST") == 2
    assert Database(server.db_path).count_receipts(key) == 1


def test_debug_logs_hold_no_id_number_name_or_token(client, caplog):
    caplog.set_level(logging.DEBUG)
    opened = client.open_session(Credential.ID_CARD, ssn=ELDER, name="王秀兰")
    assert isinstance(opened, SessionOpened)
    assert isinstance(client.pension(opened.token), Pension)
    lines = [r.getMessage() for r in caplog.records]
    assert any("/v1/pension" in line for line in lines)  # urllib3 and the client logged the request ...
    assert not any(ELDER in line or "王秀兰" in line or opened.token in line for line in lines)  # ... only that


def test_verify_forged_and_foreign_urls(server, client):
    token = token_for(client)
    assert isinstance(client.pension(token), Pension)
    rec = client.create_receipt(token, idempotency_key=str(uuid.uuid4()), service="pension_query", created_at=now())
    assert isinstance(rec, Receipt)
    url, sig = rec.verify_url.split("?sig=")
    forged = f"{url}?sig={'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    server.reset_counts()
    v = client.verify_receipt(forged)
    assert isinstance(v, Verification) and v.genuine is False and v.name_masked is None
    assert v.reason is VerifyReason.BAD_SIGNATURE
    foreign = client.verify_receipt(rec.verify_url.replace("127.0.0.1", "evil.example"))
    assert isinstance(foreign, BackendFailure) and foreign.code == "foreign_url"
    assert server.request_count("/v1/receipts", "GET") == 1  # the foreign URL was never fetched


def test_verify_page_for_a_phone_on_the_public_listener(server, client):
    token = token_for(client)
    assert isinstance(client.pension(token), Pension)
    rec = client.create_receipt(token, idempotency_key=str(uuid.uuid4()), service="pension_query", created_at=now())
    assert isinstance(rec, Receipt)
    # a phone: no client certificate at all
    r = requests.get(rec.verify_url, headers={"Accept": "text/html"}, verify=str(server.ca_path), timeout=(1, 2))
    assert r.status_code == 200 and "王*兰" in r.text


def test_ecard_sign_in_is_the_session_opening(server, client):
    code = demo_code(server)
    opened = client.open_session(Credential.ECARD, code=code)
    assert isinstance(opened, SessionOpened) and opened.credential is Credential.ECARD
    assert opened.person.ssn == "41132219780901441X" and opened.person.name == "李建国"
    assert isinstance(client.pension(opened.token), Pension)
    unknown = client.open_session(Credential.ECARD, code=code[:-1] + ("A" if code[-1] != "A" else "B"))
    assert isinstance(unknown, BackendFailure) and (unknown.kind, unknown.code) == (
        FailureKind.NOT_FOUND, "ecard_unknown")


def test_session_openings_are_rate_limited_and_the_client_waits_as_asked(tmp_path):
    srv = start_server(tmp_path / "limited", session_burst=1, session_interval=1.0)
    try:
        with make_client(srv, retries=0) as eager, make_client(srv, retries=1, read_timeout=3) as patient:
            assert isinstance(eager.open_session(Credential.ID_CARD, ssn=ELDER), SessionOpened)
            busy = eager.open_session(Credential.ID_CARD, ssn=ELDER)
            assert isinstance(busy, BackendFailure)
            assert (busy.kind, busy.code, busy.status) == (FailureKind.RATE_LIMITED, "rate_limited", 429)
            waits: list[float] = []
            real_sleep = patient._sleep
            patient._sleep = lambda s: (waits.append(s), real_sleep(s))
            assert isinstance(patient.open_session(Credential.ID_CARD, ssn=ELDER), SessionOpened)
            assert len(waits) == 1 and 0 < waits[0] <= patient.retry_after_cap
    finally:
        srv.stop()


# --- security ---------------------------------------------------------------------------------------------


def test_client_without_client_cert_is_refused(server):
    c = BackendClient(server.url, server.ca_path, None, None, connect_timeout=1, read_timeout=1, retries=0)
    got = c.health()
    assert got is False
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
    assert c.health() is False
    assert server.request_count() == 0


def test_wrong_ca_pinned_is_refused(server, tmp_path):
    rogue_ca, _ = write_ca(tmp_path / "other")
    c = BackendClient(server.url, rogue_ca, server.client_cert, server.client_key, connect_timeout=1,
                      read_timeout=1)
    got = c.open_session(Credential.ID_CARD, ssn=ELDER)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.OFFLINE and got.code == "tls_error"
    assert server.request_count() == 0


def test_a_token_works_only_from_the_terminal_that_opened_it(server, client, tmp_path):
    token = token_for(client)
    cert, key = issue_client_cert(server.pki.directory, "T-OTHER-01")
    with BackendClient(server.url, server.ca_path, cert, key, connect_timeout=1, read_timeout=1) as other:
        got = other.pension(token)
    assert isinstance(got, BackendFailure)
    assert (got.kind, got.code, got.status) == (FailureKind.SESSION_REFUSED, "wrong_terminal", 403)
    assert isinstance(client.pension(token), Pension)


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


def test_offline_mode_refuses_connections_then_recovers(server, client):
    assert client.health() is True  # leaves a kept-alive connection in the pool
    token = token_for(client)
    server.set_mode("offline")
    got = client.pension(token)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.OFFLINE
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    server.set_mode("online")
    assert isinstance(client.pension(token), Pension)


def test_stopped_server_is_offline(tmp_path):
    srv = start_server(tmp_path / "b2")
    c = BackendClient(srv.url, srv.ca_path, srv.client_cert, srv.client_key, connect_timeout=1, read_timeout=1)
    assert c.health() is True
    srv.stop()
    got = c.open_session(Credential.ID_CARD, ssn=ELDER)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.OFFLINE
    with pytest.raises(RuntimeError):
        srv.set_mode("online")  # stopped for good


def test_slow_server_is_timeout(server):
    with make_client(server, read_timeout=0.3, retries=0) as c:
        token = token_for(c)
        server.set_mode("slow", slow_seconds=2.0)
        got = c.pension(token)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.TIMEOUT


def test_slow_server_is_cut_at_the_call_deadline(server):
    with make_client(server, read_timeout=10, deadline=0.5, retries=0) as c:
        token = token_for(c)
        server.set_mode("slow", slow_seconds=3.0)
        got = c.pension(token)
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.TIMEOUT, "deadline")


def test_error_mode_is_server_error_after_retries_of_a_get(server, client):
    token = token_for(client)
    server.set_mode("error")
    server.reset_counts()
    got = client.filing_status(token, "F20250310-0000000000")
    assert isinstance(got, BackendFailure)
    assert (got.kind, got.code, got.status) == (FailureKind.SERVER_ERROR, "server_error", 500)
    assert server.request_count("/v1/filings", "GET") == 3  # 1 + retries=2


def test_transient_error_is_retried_to_success(server, client):
    server.fail_next(1)
    assert client.health() is True
    assert server.request_count("/v1/health", "GET") == 2


def test_read_timeout_on_get_is_retried(server):
    with make_client(server, read_timeout=0.3, retries=1) as c:
        server.set_mode("slow", slow_seconds=2.0)
        assert c.health() is False
    assert server.request_count("/v1/health", "GET") == 2


def test_posts_without_a_key_are_not_retried(server, client):
    token = token_for(client)
    server.set_mode("error")
    server.reset_counts()
    got = client.pension(token)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.SERVER_ERROR
    assert server.request_count("/v1/pension", "POST") == 1
    got = client.open_session(Credential.ID_CARD, ssn=ELDER)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.SERVER_ERROR
    assert server.request_count("/v1/sessions", "POST") == 1
    got = client.create_receipt(token, idempotency_key=str(uuid.uuid4()), service="pension_query", created_at=now())
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.SERVER_ERROR
    assert server.request_count("/v1/receipts", "POST") == 3  # receipts carry an Idempotency-Key


# --- filing: 社保卡临时挂失 --------------------------------------------------------------------------------


def test_card_loss_happy_path_over_tls(server, client):
    token = token_for(client, GEN3, Credential.ID_CARD)
    f = client.report_card_loss(token, idempotency_key=str(uuid.uuid4()), created_at=now())
    assert isinstance(f, CardLossFiling)
    assert (f.status, f.card_status.value, f.replayed) == (FilingState.ACCEPTED, "temporarily_suspended", False)
    assert f.verify_url.startswith(f"{server.verify_url}/v1/receipts/{f.receipt_id}/verify?sig=")
    assert ("挂失状态", "已临时挂失") in f.lines
    assert Database(server.db_path).card_status(GEN3)[::2] == ("temporarily_suspended", f.filing_id)

    v = client.verify_receipt(f.verify_url)
    assert isinstance(v, Verification) and v.genuine is True
    assert (v.service, v.title, v.name_masked) == ("card_loss", "社保卡临时挂失", "赵*明")

    s = client.filing_status(token, f.filing_id)
    assert isinstance(s, FilingSummary) and (s.filing_id, s.service, s.status) == (f.filing_id, "card_loss", "done")
    assert s.created_at == f.created_at

    again = client.report_card_loss(token_for(client, GEN3), idempotency_key=str(uuid.uuid4()), created_at=now())
    assert isinstance(again, CardLossFiling) and again.status is FilingState.ALREADY_REPORTED
    assert again.filing_id == f.filing_id and again.receipt_id == f.receipt_id
    assert Database(server.db_path).count_filings(GEN3) == 1
    # another person's session cannot see this filing
    other = client.filing_status(token_for(client, ELDER), f.filing_id)
    assert isinstance(other, BackendFailure) and (other.kind, other.code) == (FailureKind.NOT_FOUND, "unknown_filing")


def test_card_loss_lost_answer_is_retried_and_one_filing(server, client):
    token = token_for(client, BLOCKED)
    key = str(uuid.uuid4())
    server.reset_counts()
    server.fail_next(1, after_processing=True)
    f = client.report_card_loss(token, idempotency_key=key, created_at=now())
    assert isinstance(f, CardLossFiling)
    assert (f.status, f.replayed) == (FilingState.ACCEPTED, True)
    assert server.request_count("/v1/filings/card-loss", "POST") == 2
    db = Database(server.db_path)
    assert db.count_filings(BLOCKED) == 1
    assert db.card_status(BLOCKED)[2] == f.filing_id
    assert db.receipt(f.receipt_id) is not None and db.receipt(f.receipt_id).service == "card_loss"


def test_card_loss_failures_over_tls(server, client):
    got = client.report_card_loss(token_for(client, NO_SSC, Credential.ID_CARD), idempotency_key=str(uuid.uuid4()),
                                  created_at=now())
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.NOT_FOUND, "no_card")
    token = token_for(client, YOUNG)
    got = client.filing_status(token, "F20250310-0000000000")
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.NOT_FOUND, "unknown_filing")
    server.set_mode("error")
    server.reset_counts()
    got = client.report_card_loss(token, idempotency_key=str(uuid.uuid4()), created_at=now())
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.SERVER_ERROR
    assert server.request_count("/v1/filings/card-loss", "POST") == 3  # 1 + retries=2
    assert Database(server.db_path).count_filings(YOUNG) == 0
