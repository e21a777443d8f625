"""BackendClient without a network: construction rules, failure mapping, strict parsing.

The transport is replaced by an in-memory requests adapter; the real TLS path is in tests/e2e/test_backend_tls.py.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
import requests
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.adapters import BaseAdapter

from backend.pki import ensure_demo_pki
from kiosk.backend_client import (
    BackendClient,
    BackendFailure,
    ECardPerson,
    FailureKind,
    FilingRecord,
    FilingStatus,
    PensionStatus,
    ReceiptVerification,
)

pytestmark = pytest.mark.timeout(60)

BASE = "https://127.0.0.1:8443"
ELDER = "370102195203140527"

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


class FakeAdapter(BaseAdapter):
    """Answers every request with a canned response or raises a canned exception."""

    def __init__(self, status: int = 200, body: bytes | str | object = b"{}", exc: Exception | None = None):
        super().__init__()
        self.status, self.exc, self.requests = status, exc, []
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
        resp.headers["Content-Type"] = "application/json"
        resp.url = request.url
        resp.request = request
        return resp

    def close(self):
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return ensure_demo_pki(tmp_path_factory.mktemp("pki"))


def client_with(pki, adapter: FakeAdapter) -> BackendClient:
    c = BackendClient(BASE, pki.ca_cert, pki.client_cert, pki.client_key, connect_timeout=2, read_timeout=5)
    c.session.mount(BASE + "/", adapter)
    c.session.mount(BASE + "/v1/receipts", adapter)
    c.session.mount(BASE + "/v1/filings/card-loss", adapter)
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


def test_ca_is_pinned_and_client_cert_used(pki):
    c = BackendClient(BASE + "/", pki.ca_cert, pki.client_cert, pki.client_key)
    assert c.base_url == BASE
    assert c.session.verify == str(pki.ca_cert)
    assert c.session.cert == (str(pki.client_cert), str(pki.client_key))
    assert c.session.trust_env is False


def test_retry_policy_per_route(pki):
    c = BackendClient(BASE, pki.ca_cert, pki.client_cert, pki.client_key, retries=3)
    get_retry = c.session.get_adapter(BASE + "/v1/pension/x").max_retries
    receipt_retry = c.session.get_adapter(BASE + "/v1/receipts").max_retries
    ecard_retry = c.session.get_adapter(BASE + "/v1/ecard/resolve").max_retries
    assert get_retry.total == 3 and "GET" in get_retry.allowed_methods
    assert "POST" not in get_retry.allowed_methods and "POST" not in ecard_retry.allowed_methods
    assert "POST" in receipt_retry.allowed_methods
    assert 503 in get_retry.status_forcelist
    loss_retry = c.session.get_adapter(BASE + "/v1/filings/card-loss").max_retries
    status_retry = c.session.get_adapter(BASE + "/v1/filings/F1").max_retries
    assert "POST" in loss_retry.allowed_methods and loss_retry.total == 3  # it carries an Idempotency-Key
    assert "POST" not in status_retry.allowed_methods and "GET" in status_retry.allowed_methods


def test_every_call_has_connect_and_read_timeouts(pki):
    adapter = FakeAdapter(body=PENSION)
    c = client_with(pki, adapter)
    c.pension(ELDER)
    c.health()
    c.resolve_ecard("ESSC1.a.b")
    c.verify_receipt(BASE + "/v1/receipts/R1/verify?sig=x")
    c.create_receipt(
        idempotency_key="k" * 16, terminal_id="t", site_id="s", service="x", ssn=ELDER, summary={},
        created_at="2025-01-01T00:00:00+08:00",
    )
    assert len(adapter.requests) == 5
    assert all(kw["timeout"] == (2.0, 5.0) for _, kw in adapter.requests)
    post = adapter.requests[-1][0]
    assert post.headers["Idempotency-Key"] == "k" * 16


# --- results ------------------------------------------------------------------------------------------------


def test_pension_parsed_to_typed_values(pki):
    got = client_with(pki, FakeAdapter(body=PENSION)).pension(ELDER)
    assert isinstance(got, PensionStatus)
    assert got.account_balance == Decimal("7532.40") and got.monthly_amount == Decimal("238.50")
    assert got.payments[0].month == "2025-02" and got.payments[0].amount == Decimal("238.50")
    with pytest.raises(AttributeError):
        got.receiving = False  # frozen


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (404, {"code": "no_record", "message": "x"}, FailureKind.NOT_FOUND, "no_record"),
        (410, {"code": "ecard_expired", "message": "x"}, FailureKind.REJECTED, "ecard_expired"),
        (400, "not json", FailureKind.REJECTED, None),
        (500, {"code": "server_error"}, FailureKind.SERVER_ERROR, "server_error"),
        (503, b"<html>bad gateway</html>", FailureKind.SERVER_ERROR, None),
        (200, b"<html>captive portal</html>", FailureKind.BAD_RESPONSE, "not_json"),
        (200, {"unexpected": True}, FailureKind.BAD_RESPONSE, "bad_shape"),
        (200, [1, 2, 3], FailureKind.BAD_RESPONSE, "bad_shape"),
        (200, dict(PENSION, account_balance="NaN"), FailureKind.BAD_RESPONSE, "bad_shape"),
        (200, dict(PENSION, receiving="yes"), FailureKind.BAD_RESPONSE, "bad_shape"),
        (302, b"", FailureKind.BAD_RESPONSE, None),
    ],
)
def test_http_answers_map_to_failure_kinds(pki, status, body, kind, code):
    got = client_with(pki, FakeAdapter(status=status, body=body)).pension(ELDER)
    assert isinstance(got, BackendFailure)
    assert (got.kind, got.code) == (kind, code)


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (requests.exceptions.ConnectionError("refused"), FailureKind.OFFLINE, "connection_error"),
        (requests.exceptions.ConnectTimeout("slow connect"), FailureKind.OFFLINE, "connect_timeout"),
        (requests.exceptions.ReadTimeout("slow answer"), FailureKind.TIMEOUT, "read_timeout"),
        (requests.exceptions.SSLError("bad cert"), FailureKind.OFFLINE, "tls_error"),
        (
            requests.exceptions.ConnectionError(
                urllib3.exceptions.MaxRetryError(None, "/", urllib3.exceptions.ReadTimeoutError(None, "/", "t"))
            ),
            FailureKind.TIMEOUT,
            "read_timeout",
        ),
        (requests.exceptions.ChunkedEncodingError("cut"), FailureKind.OFFLINE, "connection_error"),
        (requests.exceptions.ContentDecodingError("gzip"), FailureKind.BAD_RESPONSE, "decoding_error"),
    ],
)
def test_exceptions_map_to_failure_kinds(pki, exc, kind, code):
    got = client_with(pki, FakeAdapter(exc=exc)).pension(ELDER)
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (kind, code)


def test_health_is_a_bool(pki):
    assert client_with(pki, FakeAdapter(body={"status": "ok"})).health() is True
    assert client_with(pki, FakeAdapter(body={"status": "degraded"})).health() is False
    assert client_with(pki, FakeAdapter(status=500, body={})).health() is False
    assert client_with(pki, FakeAdapter(exc=requests.exceptions.ConnectionError())).health() is False


def test_verify_only_fetches_own_urls(pki):
    adapter = FakeAdapter(body={"genuine": False, "reason": "bad_signature"})
    c = client_with(pki, adapter)
    got = c.verify_receipt("https://evil.example/v1/receipts/R1/verify?sig=x")
    assert isinstance(got, BackendFailure) and got.code == "foreign_url" and adapter.requests == []
    got = c.verify_receipt(BASE + "/v1/receipts/R1/verify?sig=x")
    assert isinstance(got, ReceiptVerification) and got.genuine is False


def test_ecard_person_repr_hides_personal_data(pki):
    got = client_with(pki, FakeAdapter(body={"name": "王秀兰", "ssn": ELDER})).resolve_ecard("ESSC1.a.b")
    assert isinstance(got, ECardPerson) and got.ssn == ELDER
    assert ELDER not in repr(got) and "王秀兰" not in repr(got)


def test_logs_hold_no_id_number_or_name(pki, caplog):
    caplog.set_level(logging.DEBUG, logger="kiosk.backend")
    c = client_with(pki, FakeAdapter(status=404, body={"code": "no_record"}))
    c.pension(ELDER)
    c2 = client_with(pki, FakeAdapter(exc=requests.exceptions.ConnectionError(f"{BASE}/v1/pension/{ELDER}")))
    failure = c2.pension(ELDER)
    client_with(pki, FakeAdapter(body={"name": "王秀兰", "ssn": ELDER})).resolve_ecard("ESSC1.a.b")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1/pension/{ssn}" in text  # the route template is logged ...
    assert ELDER not in text and "王秀兰" not in text  # ... never the number or the name
    assert ELDER not in repr(failure)


FILING = {
    "filing_id": "F20250310-0A1B2C3D4E",
    "status": "accepted",
    "card_status": "temporarily_suspended",
    "receipt_id": "R20250310-0A1B2C3D4E",
    "verify_url": BASE + "/v1/receipts/R20250310-0A1B2C3D4E/verify?sig=x",
    "lines": [["挂失状态", "已临时挂失"], ["说明", "临时挂失有效期 5 个工作日"]],
    "created_at": "2025-03-10T17:30:00+08:00",
    "received_at": "2025-03-10T09:30:00Z",
    "replayed": False,
}


def loss_args(**over):
    args = dict(
        idempotency_key="loss-key-0001", terminal_id="T-0001", site_id="370102-001", ssn=ELDER,
        credential="id_card", created_at="2025-03-10T17:30:00+08:00",
    )
    args.update(over)
    return args


def test_card_loss_request_and_parsed_record(pki):
    adapter = FakeAdapter(body=FILING)
    c = client_with(pki, adapter)
    got = c.report_card_loss(**loss_args())
    assert isinstance(got, FilingRecord)
    assert got.filing_id == "F20250310-0A1B2C3D4E" and got.status == "accepted" and got.replayed is False
    assert got.lines == (("挂失状态", "已临时挂失"), ("说明", "临时挂失有效期 5 个工作日"))
    assert got.received_at.utcoffset() is not None
    req = adapter.requests[0][0]
    assert req.method == "POST" and req.url == BASE + "/v1/filings/card-loss"
    assert req.headers["Idempotency-Key"] == "loss-key-0001"
    assert json.loads(req.body) == {
        "terminal_id": "T-0001", "site_id": "370102-001", "ssn": ELDER, "credential": "id_card",
        "created_at": "2025-03-10T17:30:00+08:00",
    }
    c.report_card_loss(**loss_args(name="王秀兰"))
    assert json.loads(adapter.requests[1][0].body)["name"] == "王秀兰"


@pytest.mark.parametrize(
    "body",
    [
        {**FILING, "replayed": "no"},
        {**FILING, "created_at": "2025-03-10T17:30:00"},  # naive
        {**FILING, "lines": [["only one"]]},
        {k: v for k, v in FILING.items() if k != "receipt_id"},
    ],
)
def test_card_loss_off_shape_is_bad_response(pki, body):
    got = client_with(pki, FakeAdapter(body=body)).report_card_loss(**loss_args())
    assert isinstance(got, BackendFailure) and got.kind == FailureKind.BAD_RESPONSE


def test_card_loss_failures_keep_the_server_code(pki):
    got = client_with(pki, FakeAdapter(status=404, body={"code": "no_card"})).report_card_loss(**loss_args())
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.NOT_FOUND, "no_card")
    got = client_with(pki, FakeAdapter(status=409, body={"code": "idempotency_conflict"})).report_card_loss(
        **loss_args()
    )
    assert isinstance(got, BackendFailure) and (got.kind, got.code) == (FailureKind.REJECTED, "idempotency_conflict")


def test_filing_status_parsed_and_id_quoted(pki):
    adapter = FakeAdapter(body={"filing_id": "F1", "type": "card_loss", "status": "accepted",
                                "created_at": "2025-03-10T17:30:00+08:00"})
    c = client_with(pki, adapter)
    got = c.filing_status("F1")
    assert isinstance(got, FilingStatus) and (got.type, got.status) == ("card_loss", "accepted")
    c.filing_status("a/../b")
    assert adapter.requests[1][0].url == BASE + "/v1/filings/a%2F..%2Fb"


# --- property: no answer from outside can crash the client ---------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=20,
)
_pensionish = st.fixed_dictionaries(
    {k: st.one_of(st.just(v), _json) for k, v in PENSION.items()}
)


@settings(max_examples=200, deadline=None)
@given(status=st.sampled_from([200, 201, 400, 404, 409, 410, 500, 502]), body=st.one_of(st.binary(max_size=200), _json, _pensionish))
def test_any_answer_becomes_a_value(pki, status, body):
    c = client_with(pki, FakeAdapter(status=status, body=body))
    for got in (
        c.pension(ELDER),
        c.resolve_ecard("ESSC1.a.b"),
        c.verify_receipt(BASE + "/v1/receipts/R1/verify?sig=x"),
        c.create_receipt(
            idempotency_key="k" * 16, terminal_id="t", site_id="s", service="x", ssn=ELDER, summary={},
            created_at="2025-01-01T00:00:00+08:00",
        ),
        c.report_card_loss(**loss_args()),
        c.filing_status("F1"),
    ):
        assert not isinstance(got, Exception)
        if status >= 300:
            assert isinstance(got, BackendFailure)
    assert isinstance(c.health(), bool)
