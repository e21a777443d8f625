"""BackendClient: construction rules, failure mapping, strict parsing with the api models, and the transport's
bounds (deadline, answer size, Retry-After, exact receipt URLs) against a real loopback HTTPS server.

Mapping tests replace the transport with an in-memory requests adapter; the bounds need a real socket, so they
run a small mutual-TLS server on 127.0.0.1 (bounded: every handler ends on its own). The reference backend is
in tests/e2e/test_backend_tls.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.adapters import BaseAdapter

from api.enums import Credential, FilingState, VerifyReason
from api.models import CardLossFiling, FilingSummary, Pension, Receipt, SessionOpened, Verification
from backend.pki import ensure_demo_pki
from kiosk.backend_client import BackendClient, BackendFailure, FailureKind

pytestmark = pytest.mark.timeout(60)

BASE = "https://127.0.0.1:8443"
ELDER = "370102195203140527"
TOKEN = "t0k3n-secret-value"
WHEN = dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))

PENSION = {
    "insurance_type": "城乡居民基本养老保险",
    "status": "领取中",
    "contribution_tier": "每年500元档",
    "years_contributed": 15,
    "account_balance": "7532.40",
    "receiving": True,
    "monthly_amount": "238.50",
    "payments": [{"month": "2025-02", "amount": "238.50", "status": "已发放"}],
    "certification_status": "已认证",
    "certification_due": "2027-03-31",
}
OPENED = {
    "token": TOKEN, "expires_at": "2025-03-10T17:45:00+08:00", "credential": "ecard",
    "person": {"name": "王秀兰", "ssn": ELDER},
}
FILING = {
    "filing_id": "F20250310-0A1B2C3D4E",
    "status": "accepted",
    "card_status": "temporarily_suspended",
    "receipt_id": "R20250310-0A1B2C3D4E",
    "verify_url": BASE + "/v1/receipts/R20250310-0A1B2C3D4E/verify?sig=abcdefgh",
    "lines": [["挂失状态", "已临时挂失"], ["说明", "临时挂失有效期 5 个工作日"]],
    "created_at": "2025-03-10T17:30:00+08:00",
    "received_at": "2025-03-10T09:30:00Z",
    "replayed": False,
}
RECEIPT = {
    "receipt_id": "R1", "verify_url": BASE + "/v1/receipts/R1/verify?sig=abcdefgh", "service": "pension_query",
    "title": "养老金查询", "terminal_id": "T-1", "site_id": "S-1", "created_at": "2025-03-10T17:30:00+08:00",
    "received_at": "2025-03-10T09:30:00Z", "replayed": False, "lines": [["月领取金额", "238.50元"]],
}


class FakeAdapter(BaseAdapter):
    """Answers every request with a canned response or raises a canned exception; records the requests."""

    def __init__(self, status: int = 200, body: bytes | str | object = b"{}", exc: Exception | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__()
        self.status, self.exc, self.requests, self.headers = status, exc, [], headers or {}
        if isinstance(body, bytes):
            self.body = body
        elif isinstance(body, str):
            self.body = body.encode()
        else:
            self.body = json.dumps(body).encode()

    def send(self, request, **kwargs):
        self.requests.append((request, kwargs))
        if self.exc is not None:
            raise self.exc
        resp = requests.Response()
        resp.status_code = self.status
        resp._content = self.body
        resp._content_consumed = True
        resp.headers["Content-Type"] = "application/json"
        resp.headers.update(self.headers)
        resp.url = request.url
        resp.request = request
        return resp

    def close(self):
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return ensure_demo_pki(tmp_path_factory.mktemp("pki"))


def client_with(pki, adapter: FakeAdapter, **kw) -> BackendClient:
    c = BackendClient(BASE, pki.ca_cert, pki.client_cert, pki.client_key, connect_timeout=2, read_timeout=5, **kw)
    c.session.mount(BASE + "/", adapter)
    c._sleep = lambda s: None  # mapping tests do not wait for backoff
    return c


# --- construction ---------------------------------------------------------------------------------------


def test_http_refused_unless_dev_mode(pki):
    with pytest.raises(ValueError, match="http://"):
        BackendClient("http://127.0.0.1:8000", pki.ca_cert, pki.client_cert, pki.client_key)
    c = BackendClient("http://127.0.0.1:8000", None, None, None, allow_insecure=True)
    assert c.session.verify is False


def test_unverified_server_refused_unless_dev_mode(pki):
    with pytest.raises(ValueError, match="ca_path"):
        BackendClient(BASE, None, pki.client_cert, pki.client_key)
    with pytest.raises(ValueError, match="CA file not found"):
        BackendClient(BASE, pki.directory / "missing.pem", pki.client_cert, pki.client_key)


def test_other_bad_configurations(pki):
    with pytest.raises(ValueError):
        BackendClient("ftp://127.0.0.1", pki.ca_cert, None, None)
    with pytest.raises(ValueError):
        BackendClient(BASE + "?x=1", pki.ca_cert, None, None)
    with pytest.raises(ValueError, match="together"):
        BackendClient(BASE, pki.ca_cert, pki.client_cert, None)
    with pytest.raises(ValueError, match="not found"):
        BackendClient(BASE, pki.ca_cert, pki.directory / "nope.pem", pki.client_key)
    with pytest.raises(ValueError, match="positive"):
        BackendClient(BASE, pki.ca_cert, None, None, read_timeout=0)
    with pytest.raises(ValueError, match="positive"):
        BackendClient(BASE, pki.ca_cert, None, None, deadline=0)
    with pytest.raises(ValueError, match="receipt_base_url"):
        BackendClient(BASE, pki.ca_cert, None, None, receipt_base_url="https://x.example/?q=1")


def test_ca_is_pinned_and_client_cert_used(pki):
    c = BackendClient(BASE + "/", pki.ca_cert, pki.client_cert, pki.client_key)
    assert c.base_url == BASE and c.receipt_base_url == BASE
    assert c.session.verify == str(pki.ca_cert)
    assert c.session.cert == (str(pki.client_cert), str(pki.client_key))
    assert c.session.trust_env is False


# --- requests: bodies, headers, tokens, no ID number in a URL --------------------------------------------


def test_personal_calls_carry_the_token_and_no_id_number_in_any_url(pki):
    adapter = FakeAdapter(body=PENSION)
    c = client_with(pki, adapter)
    c.open_session(Credential.SSCARD_PIN, ssn=ELDER, name="王秀兰")
    c.pension(TOKEN)
    c.create_receipt(TOKEN, idempotency_key="k" * 16, service="pension_query", created_at=WHEN)
    c.report_card_loss(TOKEN, idempotency_key="loss-key-0001", created_at=WHEN)
    c.filing_status(TOKEN, "F1")
    c.close_session(TOKEN)
    sent = [(r.method, r.url, r.headers.get("Authorization"), r.body) for r, _ in adapter.requests]
    assert [(m, u) for m, u, _, _ in sent] == [
        ("POST", BASE + "/v1/sessions"), ("POST", BASE + "/v1/pension"), ("POST", BASE + "/v1/receipts"),
        ("POST", BASE + "/v1/filings/card-loss"), ("GET", BASE + "/v1/filings/F1"),
        ("DELETE", BASE + "/v1/sessions/current"),
    ]
    assert sent[0][2] is None and all(a == f"Bearer {TOKEN}" for _, _, a, _ in sent[1:])
    assert json.loads(sent[0][3]) == {"credential": "sscard_pin", "ssn": ELDER, "name": "王秀兰"}
    assert json.loads(sent[1][3]) == {}
    assert json.loads(sent[2][3]) == {"service": "pension_query", "created_at": "2025-03-10T17:30:00+08:00"}
    assert json.loads(sent[3][3]) == {"created_at": "2025-03-10T17:30:00+08:00"}
    assert not any(ELDER in u for _, u, _, _ in sent)
    assert adapter.requests[2][0].headers["Idempotency-Key"] == "k" * 16
    assert all(kw["timeout"] == (2.0, 5.0) and kw["stream"] is True for _, kw in adapter.requests)


def test_bodies_that_would_be_refused_are_not_sent(pki):
    adapter = FakeAdapter(body=OPENED)
    c = client_with(pki, adapter)
    for got in (
        c.open_session(Credential.ECARD, ssn=ELDER, code="ESSC1.a.b"),  # ecard carries only the code
        c.open_session(Credential.ID_CARD, ssn="370102195203140528"),  # check digit
        c.open_session("sscard"),  # the old credential name: not a Credential
        c.create_receipt(TOKEN, idempotency_key="k" * 16, service="pension_query", created_at=WHEN.replace(tzinfo=None)),
    ):
        assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.REJECTED, "invalid_request")
    assert adapter.requests == []
    # the name is optional: one the contract cannot carry is left out, the session still opens
    assert not isinstance(c.open_session(Credential.ID_CARD, ssn=ELDER, name="名" * 65), BackendFailure)
    assert json.loads(adapter.requests[-1][0].body) == {"credential": "id_card", "ssn": ELDER}


# --- answers: parsed strictly into the api models ------------------------------------------------------


def test_answers_parse_into_api_models(pki):
    got = client_with(pki, FakeAdapter(body=PENSION)).pension(TOKEN)
    assert isinstance(got, Pension)
    assert got.account_balance == Decimal("7532.40") and got.monthly_amount == Decimal("238.50")
    assert got.payments[0].month == "2025-02" and got.payments[0].amount == Decimal("238.50")
    opened = client_with(pki, FakeAdapter(status=201, body=OPENED)).open_session(Credential.ECARD, code="ESSC1.a.b")
    assert isinstance(opened, SessionOpened) and opened.person.ssn == ELDER and opened.credential is Credential.ECARD
    filing = client_with(pki, FakeAdapter(body=FILING)).report_card_loss(TOKEN, idempotency_key="k" * 8,
                                                                          created_at=WHEN)
    assert isinstance(filing, CardLossFiling) and filing.status is FilingState.ACCEPTED
    assert filing.lines == [("挂失状态", "已临时挂失"), ("说明", "临时挂失有效期 5 个工作日")]
    receipt = client_with(pki, FakeAdapter(body=RECEIPT)).create_receipt(
        TOKEN, idempotency_key="k" * 8, service="pension_query", created_at=WHEN)
    assert isinstance(receipt, Receipt) and receipt.lines == [("月领取金额", "238.50元")]
    status = client_with(pki, FakeAdapter(body={
        "filing_id": "F1", "service": "card_loss", "title": "社保卡临时挂失", "status": "done", "handling": "direct",
        "due_date": "2025-03-10", "created_at": "2025-03-10T17:30:00+08:00", "updated_at": "2025-03-10T17:30:00+08:00",
    })).filing_status(TOKEN, "F1")
    assert isinstance(status, FilingSummary)
    assert client_with(pki, FakeAdapter(status=204, body=b"")).close_session(TOKEN) is None


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (404, {"code": "no_record", "message": "x"}, FailureKind.NOT_FOUND, "no_record"),
        (410, {"code": "ecard_expired", "message": "x"}, FailureKind.REJECTED, "ecard_expired"),
        (401, {"code": "token_expired", "message": "x"}, FailureKind.SESSION_REFUSED, "token_expired"),
        (403, {"code": "wrong_terminal", "message": "x"}, FailureKind.SESSION_REFUSED, "wrong_terminal"),
        (429, {"code": "rate_limited", "message": "x"}, FailureKind.RATE_LIMITED, "rate_limited"),
        (409, {"code": "nothing_to_vouch", "message": "x"}, FailureKind.REJECTED, "nothing_to_vouch"),
        (400, {"code": "not_a_known_code", "message": "x"}, FailureKind.REJECTED, None),  # closed set
        (400, "not json", FailureKind.REJECTED, None),
        (500, {"code": "server_error", "message": "x"}, FailureKind.SERVER_ERROR, "server_error"),
        (503, b"<html>bad gateway</html>", FailureKind.SERVER_ERROR, None),
        (200, b"<html>captive portal</html>", FailureKind.BAD_RESPONSE, "not_json"),
        (200, {"unexpected": True}, FailureKind.BAD_RESPONSE, "bad_shape"),
        (200, [1, 2, 3], FailureKind.BAD_RESPONSE, "bad_shape"),
        (200, dict(PENSION, account_balance="NaN"), FailureKind.BAD_RESPONSE, "bad_shape"),
        (200, dict(PENSION, account_balance=7532.4), FailureKind.BAD_RESPONSE, "bad_shape"),  # never a float
        (200, dict(PENSION, receiving="yes"), FailureKind.BAD_RESPONSE, "bad_shape"),
        (200, dict(PENSION, years_contributed="15"), FailureKind.BAD_RESPONSE, "bad_shape"),  # strict
        (302, b"", FailureKind.BAD_RESPONSE, None),
    ],
)
def test_http_answers_map_to_failure_kinds(pki, status, body, kind, code):
    got = client_with(pki, FakeAdapter(status=status, body=body), retries=0).pension(TOKEN)
    assert isinstance(got, BackendFailure)
    assert (got.kind, got.code) == (kind, code)


@pytest.mark.parametrize(
    "body",
    [
        {**FILING, "replayed": "no"},
        {**FILING, "created_at": "2025-03-10T17:30:00"},  # naive
        {**FILING, "lines": [["only one"]]},
        {**FILING, "status": "filed"},  # not a FilingState
        {k: v for k, v in FILING.items() if k != "receipt_id"},
    ],
)
def test_card_loss_off_shape_is_bad_response(pki, body):
    got = client_with(pki, FakeAdapter(body=body)).report_card_loss(TOKEN, idempotency_key="k" * 8, created_at=WHEN)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.BAD_RESPONSE


def test_ecard_unknown_is_not_found(pki):
    got = client_with(pki, FakeAdapter(status=404, body={"code": "ecard_unknown", "message": "x"})).open_session(
        Credential.ECARD, code="ESSC1.a.b")
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.NOT_FOUND, "ecard_unknown")


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (requests.exceptions.ConnectionError("refused"), FailureKind.OFFLINE, "connection_error"),
        (requests.exceptions.ConnectTimeout("slow connect"), FailureKind.OFFLINE, "connect_timeout"),
        (requests.exceptions.ReadTimeout("slow answer"), FailureKind.TIMEOUT, "read_timeout"),
        (requests.exceptions.SSLError("bad cert"), FailureKind.OFFLINE, "tls_error"),
        (requests.exceptions.ChunkedEncodingError("cut"), FailureKind.OFFLINE, "connection_error"),
        (requests.exceptions.ContentDecodingError("gzip"), FailureKind.BAD_RESPONSE, "decoding_error"),
    ],
)
def test_exceptions_map_to_failure_kinds(pki, exc, kind, code):
    got = client_with(pki, FakeAdapter(exc=exc)).pension(TOKEN)
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (kind, code)


def test_retries_only_where_a_repeat_is_harmless(pki):
    def sent(call, status=500, exc=None) -> int:
        adapter = FakeAdapter(status=status, body={"code": "server_error", "message": "x"}, exc=exc)
        call(client_with(pki, adapter, retries=2))
        return len(adapter.requests)

    assert sent(lambda c: c.filing_status(TOKEN, "F1")) == 3  # GET
    assert sent(lambda c: c.close_session(TOKEN)) == 3  # DELETE
    assert sent(lambda c: c.report_card_loss(TOKEN, idempotency_key="k" * 8, created_at=WHEN)) == 3  # key
    assert sent(lambda c: c.pension(TOKEN)) == 1  # a POST without a key: never twice
    assert sent(lambda c: c.open_session(Credential.ECARD, code="ESSC1.a.b")) == 1
    read_cut = requests.exceptions.ReadTimeout("slow")
    assert sent(lambda c: c.open_session(Credential.ECARD, code="ESSC1.a.b"), exc=read_cut) == 1
    never_opened = requests.exceptions.ConnectTimeout("no route")
    assert sent(lambda c: c.open_session(Credential.ECARD, code="ESSC1.a.b"), exc=never_opened) == 3
    # 429: nothing was done, any method may wait and try again
    assert sent(lambda c: c.open_session(Credential.ECARD, code="ESSC1.a.b"), status=429) == 3


def test_health_is_a_bool(pki):
    ok = {"status": "ok", "api_version": "1", "time": "2025-03-10T17:30:00+08:00"}
    assert client_with(pki, FakeAdapter(body=ok)).health() is True
    assert client_with(pki, FakeAdapter(body={"status": "degraded"})).health() is False
    assert client_with(pki, FakeAdapter(status=500, body={})).health() is False
    assert client_with(pki, FakeAdapter(exc=requests.exceptions.ConnectionError())).health() is False


def test_logs_hold_no_id_number_name_or_token(pki, caplog):
    caplog.set_level(logging.DEBUG)
    client_with(pki, FakeAdapter(status=404, body={"code": "no_record", "message": "x"})).pension(TOKEN)
    client_with(pki, FakeAdapter(status=201, body=OPENED)).open_session(Credential.SSCARD_PIN, ssn=ELDER,
                                                                         name="王秀兰")
    failure = client_with(pki, FakeAdapter(exc=requests.exceptions.ConnectionError(f"{BASE}/{ELDER}"))).pension(
        TOKEN)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1/pension" in text and "/v1/sessions" in text
    assert ELDER not in text and "王秀兰" not in text and TOKEN not in text
    assert ELDER not in repr(failure)


# --- property: no answer from outside can crash the client ---------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=20,
)
_pensionish = st.fixed_dictionaries({k: st.one_of(st.just(v), _json) for k, v in PENSION.items()})
_filingish = st.fixed_dictionaries({k: st.one_of(st.just(v), _json) for k, v in FILING.items()})


@settings(max_examples=150, deadline=None)
@given(
    status=st.sampled_from([200, 201, 204, 400, 401, 403, 404, 409, 410, 429, 500, 502]),
    body=st.one_of(st.binary(max_size=200), _json, _pensionish, _filingish),
    retry_after=st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 10**12).map(str)),
)
def test_any_answer_becomes_a_value(pki, status, body, retry_after):
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    c = client_with(pki, FakeAdapter(status=status, body=body, headers=headers), retries=1)
    waits: list[float] = []
    c._sleep = waits.append
    for got in (
        c.pension(TOKEN),
        c.open_session(Credential.ECARD, code="ESSC1.a.b"),
        c.verify_receipt(BASE + "/v1/receipts/R1/verify?sig=abcdefgh"),
        c.create_receipt(TOKEN, idempotency_key="k" * 16, service="pension_query", created_at=WHEN),
        c.report_card_loss(TOKEN, idempotency_key="k" * 16, created_at=WHEN),
        c.filing_status(TOKEN, "F1"),
        c.close_session(TOKEN),
    ):
        assert not isinstance(got, Exception)
        if status >= 300:
            assert isinstance(got, BackendFailure)
    assert isinstance(c.health(), bool)
    assert all(0 <= w <= c.retry_after_cap for w in waits)


# --- a real loopback server: the transport's bounds ------------------------------------------------------


class Loopback:
    """A mutual-TLS HTTP server on 127.0.0.1; `handle(handler)` answers each request. Records paths, and how
    each answer ended (`sent` bytes of the body, `gone` set when the client hung up)."""

    def __init__(self, pki, handle: Callable[[BaseHTTPRequestHandler, Loopback], None]) -> None:
        self.handle, self.paths, self.sent = handle, [], 0
        self.reads_body = False  # True: handle() reads the request body itself (at its own pace)
        self.gone = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # no request lines in test output
                pass

            def _any(self):
                outer.paths.append((self.command, self.path, self.headers.get("Authorization")))
                n = int(self.headers.get("Content-Length") or 0)
                if n and not outer.reads_body:
                    self.rfile.read(n)
                try:
                    outer.handle(self, outer)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    outer.gone.set()

            do_GET = do_POST = do_DELETE = do_PUT = _any

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def json_answer(h: BaseHTTPRequestHandler, status: int, body: object, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    h.send_response(status)
    for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


@pytest.fixture
def loopback(pki):
    servers: list[Loopback] = []

    def start(handle) -> Loopback:
        srv = Loopback(pki, handle)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def real_client(pki, srv: Loopback, **kw) -> BackendClient:
    args = dict(connect_timeout=2, read_timeout=10, retries=0)
    args.update(kw)
    return BackendClient(srv.url, pki.ca_cert, pki.client_cert, pki.client_key, **args)


DRIP_BYTES = 60  # at 0.5 s a byte: 30 s, far past the deadline and never past the test's own timeout


def _drip(h: BaseHTTPRequestHandler, srv: Loopback, head: bytes, body: bytes) -> None:
    h.wfile.write(head)
    h.wfile.flush()
    for i in range(len(body)):
        h.wfile.write(body[i:i + 1])
        h.wfile.flush()
        srv.sent += 1
        time.sleep(0.5)  # the server's pace, not a wait of the test
    srv.gone.set()  # not cut: the assertions below fail


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_dripping_server_is_cut_at_the_call_deadline(pki, loopback, where):
    payload = b" " * DRIP_BYTES

    def handle(h, srv):
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {DRIP_BYTES}\r\n\r\n".encode()
        if where == "headers":
            _drip(h, srv, b"", head + payload)
        else:
            _drip(h, srv, head, payload)

    srv = loopback(handle)
    # each byte comes well within the 10 s read timeout: only the 1 s deadline can end this
    got = real_client(pki, srv, deadline=1.0).pension(TOKEN)
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.TIMEOUT, "deadline")
    assert srv.gone.wait(30)
    assert srv.sent < DRIP_BYTES  # the client hung up: the server could not finish


def test_the_deadline_covers_retries_too(pki, loopback):
    def handle(h, srv):
        json_answer(h, 503, {"code": "server_error", "message": "x"}, {"Retry-After": "1"})

    srv = loopback(handle)
    c = real_client(pki, srv, deadline=1.5, retries=10, retry_after_cap=1.0)
    waits: list[float] = []
    c._sleep = lambda s: (waits.append(s), time.sleep(s))
    got = c.filing_status(TOKEN, "F1")
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.SERVER_ERROR
    assert len(srv.paths) <= 2 and len(waits) == len(srv.paths) - 1  # no wait that would pass the deadline


@pytest.mark.parametrize("declared", [True, False])
def test_an_oversized_answer_is_not_read(pki, loopback, declared):
    total, chunk = 64 << 20, b"x" * (64 << 10)  # far more than the kernel buffers hold

    def handle(h, srv):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if declared:
            h.send_header("Content-Length", str(total))
        else:
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(total // len(chunk)):
            h.wfile.write(chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            srv.sent += len(chunk)
        srv.gone.set()

    srv = loopback(handle)
    got = real_client(pki, srv).pension(TOKEN)
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.BAD_RESPONSE, "too_large")
    assert srv.gone.wait(30)
    assert srv.sent < total


@pytest.mark.parametrize("asked", ["3600", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_is_capped(pki, loopback, asked):
    def handle(h, srv):
        if len(srv.paths) == 1:
            json_answer(h, 429, {"code": "rate_limited", "message": "x"}, {"Retry-After": asked})
        else:
            json_answer(h, 201, OPENED)

    srv = loopback(handle)
    c = real_client(pki, srv, retries=1, retry_after_cap=5.0, deadline=30)
    waits: list[float] = []
    c._sleep = waits.append  # record instead of waiting
    got = c.open_session(Credential.ECARD, code="ESSC1.a.b")
    assert isinstance(got, SessionOpened)
    assert waits == [5.0] and len(srv.paths) == 2


def test_rate_limited_past_the_deadline_is_a_value_at_once(pki, loopback):
    def handle(h, srv):
        json_answer(h, 429, {"code": "rate_limited", "message": "x"}, {"Retry-After": "3"})

    srv = loopback(handle)
    c = real_client(pki, srv, retries=3, deadline=2.0)
    waits: list[float] = []
    c._sleep = waits.append
    got = c.open_session(Credential.ECARD, code="ESSC1.a.b")
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.RATE_LIMITED, "rate_limited")
    assert waits == [] and len(srv.paths) == 1  # waiting 3 s would pass the 2 s deadline


VERIFY_OK = {"genuine": True, "reason": "ok", "receipt_id": "R20250310-0A1B2C3D4E"}


def test_a_receipt_is_verified_on_our_own_backend_with_the_same_path(pki, loopback):
    srv = loopback(lambda h, s: json_answer(h, 200, VERIFY_OK))
    public = "https://verify.example.org:9443"
    c = real_client(pki, srv, receipt_base_url=public)
    url = public + "/v1/receipts/R20250310-0A1B2C3D4E/verify?sig=Ab-_0123456789xyz"
    got = c.verify_receipt(url)
    assert isinstance(got, Verification) and got.genuine and got.reason is VerifyReason.OK
    assert srv.paths == [("GET", "/v1/receipts/R20250310-0A1B2C3D4E/verify?sig=Ab-_0123456789xyz", None)]


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/v1/receipts/R1/verify?sig=abcdefgh",  # another host
        "http://verify.example.org:9443/v1/receipts/R1/verify?sig=abcdefgh",  # another scheme
        "https://verify.example.org/v1/receipts/R1/verify?sig=abcdefgh",  # another port
        "https://verify.example.org:9443@evil.example/v1/receipts/R1/verify?sig=abcdefgh",  # userinfo trick
        "https://verify.example.org:9443/v1/receipts/R1/verify?sig=abcdefgh&next=x",  # more query
        "https://verify.example.org:9443/v1/receipts/R1/verify?sig=abcdefgh#frag",
        "https://verify.example.org:9443/v1/receipts/R1/verify?sig=abc",  # signature too short
        "https://verify.example.org:9443/v1/receipts/R1/verify?sig=" + "a" * 129,  # too long
        "https://verify.example.org:9443/v1/receipts/../pension/verify?sig=abcdefgh",
        "https://verify.example.org:9443/v1/receipts/R%2F1/verify?sig=abcdefgh",
        "https://verify.example.org:9443/v1/receipts/" + "R" * 65 + "/verify?sig=abcdefgh",
        "https://verify.example.org:9443/v1/receipts/R1/verify?sig=abcd%20efgh",
        "https://verify.example.org:9443/v1/receipts/R1/verify",
        "https://verify.example.org:9443/v1/receipts/R1/verify?sig=abcdefgh\n",
        " https://verify.example.org:9443/v1/receipts/R1/verify?sig=abcdefgh",
    ],
)
def test_anything_but_our_exact_receipt_url_is_never_fetched(pki, loopback, url):
    srv = loopback(lambda h, s: json_answer(h, 200, VERIFY_OK))
    c = real_client(pki, srv, receipt_base_url="https://verify.example.org:9443")
    got = c.verify_receipt(url)
    assert isinstance(got, BackendFailure) and got.code == "foreign_url"
    assert not c.is_our_receipt(url)
    assert srv.paths == []


def test_a_server_without_our_ca_is_never_sent_a_token(pki, loopback, tmp_path):
    # the same loopback, but the client pins another CA: the handshake fails before any request
    other = ensure_demo_pki(tmp_path / "other")
    srv = loopback(lambda h, s: json_answer(h, 200, PENSION))
    c = BackendClient(srv.url, other.ca_cert, pki.client_cert, pki.client_key, retries=0)
    got = c.pension(TOKEN)
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.OFFLINE, "tls_error")
    assert srv.paths == []


def test_connection_refused_is_offline(pki):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = BackendClient(f"https://127.0.0.1:{port}", pki.ca_cert, pki.client_cert, pki.client_key, retries=1,
                      backoff_factor=0.01)
    got = c.pension(TOKEN)
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.OFFLINE


def test_an_upload_gets_a_deadline_that_grows_with_its_size(pki, loopback, monkeypatch):
    """A 300 KB photo over a slow village uplink takes longer than a call's deadline: its own deadline grows
    with the size (it used to be cut every time, and the outbox tried it forever)."""
    import hashlib

    from api.models import AttachmentStored
    from kiosk import backend_client as bc

    data = b"\xff\xd8\xff\xe0" + b"p" * (300 * 1024 - 4)
    digest = hashlib.sha256(data).hexdigest()
    rate = 256 * 1024  # bytes a second the server reads: ~1.2 s for the photo

    def handle(h, srv):
        left = int(h.headers["Content-Length"])
        while left:
            left -= len(h.rfile.read(min(left, 16 * 1024)))
            time.sleep(16 * 1024 / rate)  # the link's pace, not a wait of the test
        json_answer(h, 201, {"sha256": digest, "size": len(data), "media_type": "image/jpeg", "replayed": False})

    srv = loopback(handle)
    srv.reads_body = True
    monkeypatch.setattr(bc, "UPLOAD_FLOOR", 64 * 1024)  # the floor the test link is well above
    # the kernel buffers take the photo at once; the answer comes when the server has read it all: neither the
    # call's deadline nor its read timeout may cut that wait
    c = real_client(pki, srv, deadline=0.5, read_timeout=0.3)
    assert c.upload_deadline(len(data)) == pytest.approx(0.5 + len(data) / (64 * 1024))
    assert c.upload_deadline(10) == pytest.approx(0.5 + 10 / (64 * 1024))
    got = c.put_attachment(digest, data, "image/jpeg")
    assert isinstance(got, AttachmentStored) and got.sha256 == digest
    assert bc.BackendClient.upload_deadline(c, 10**9) == bc.UPLOAD_DEADLINE_CAP


def test_the_answers_a_422_names_are_kept(pki):
    body = {"code": "invalid_request", "message": "x", "fields": [
        {"loc": ["body", "answers", "phone"], "type": "pattern"},
        {"loc": ["body", "answers", "phone", "x"], "type": "minLength"},
        {"loc": ["body", "created_at"], "type": "created_at_out_of_range"},
        {"loc": ["body", "answers"], "type": "required"},
        {"loc": ["body", "answers", "hukou"], "type": "oneOf"},
    ]}
    got = client_with(pki, FakeAdapter(status=422, body=body), retries=0).pension(TOKEN)
    assert isinstance(got, BackendFailure) and got.code == "invalid_request"
    assert got.fields == ("phone", "hukou")
    plain = client_with(pki, FakeAdapter(status=404, body={"code": "no_record", "message": "x"})).pension(TOKEN)
    assert isinstance(plain, BackendFailure) and (plain.code, plain.fields) == ("no_record", ())
