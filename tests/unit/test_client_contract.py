"""Every request the kiosk's client can send fits the committed contract, backend/openapi.json.

The requests are captured from the real client (a recording transport adapter answers them), then each is
matched to its operation (method + path template) and checked: the JSON body against the operation's request
schema (jsonschema, OpenAPI 3.1 = JSON Schema 2020-12, $refs resolved in the document), path and query values
against their parameter schemas, the bearer token where the operation is secured, the Idempotency-Key where the
operation takes one. A body the backend would refuse with 422 (credential "sscard", say) fails here first.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from requests.adapters import BaseAdapter

from api.enums import Credential
from backend.pki import ensure_demo_pki
from kiosk.backend_client import BackendClient

SPEC_PATH = Path(__file__).resolve().parents[2] / "backend" / "openapi.json"
BASE = "https://127.0.0.1:8443"
PUBLIC = "https://verify.example.org"
ELDER = "370102195203140527"
X_ENDING = "32058319710520104X"
WHEN = dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
UTC_WHEN = dt.datetime(2025, 3, 10, 9, 30, 15, 123456, tzinfo=dt.UTC)


class Recorder(BaseAdapter):
    """Records each prepared request and answers 503, so the client sends everything and parses nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        resp = requests.Response()
        resp.status_code = 503
        resp._content = b'{"code": "server_error", "message": "x"}'
        resp._content_consumed = True
        resp.url, resp.request = request.url, request
        return resp

    def close(self):
        pass


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return ensure_demo_pki(tmp_path_factory.mktemp("pki"))


def recording_client(pki) -> tuple[BackendClient, Recorder]:
    c = BackendClient(BASE, pki.ca_cert, pki.client_cert, pki.client_key, retries=0, receipt_base_url=PUBLIC)
    rec = Recorder()
    c.session.mount(BASE + "/", rec)
    return c, rec


def every_call(c: BackendClient, token: str = "tok", name: str | None = "王秀兰", ssn: str = ELDER,
               code: str = "ESSC1.abc.def", when: dt.datetime = WHEN) -> None:
    """Everything the client can send (the runtime uses nothing else)."""
    for credential in (Credential.SSCARD_PIN, Credential.ID_CARD):
        c.open_session(credential, ssn=ssn, name=name)
        c.open_session(credential, ssn=ssn)
    c.open_session(Credential.ECARD, code=code)
    c.pension(token)
    c.create_receipt(token, idempotency_key="T-1:a1b2c3d4-1-pension_query-1000", service="pension_query",
                     created_at=when)
    c.report_card_loss(token, idempotency_key="a1b2c3d4-1-card_loss-1000", created_at=when)
    c.filing_status(token, "F20250310-0A1B2C3D4E")
    c.verify_receipt(PUBLIC + "/v1/receipts/R20250310-0A1B2C3D4E/verify?sig=AbC-_0123456789xyzAB")
    c.close_session(token)
    c.health()
    c.request_help("pin", when)
    c.help_requests(20)


# --- matching a request to the contract -------------------------------------------------------------------


def _operation(spec: dict, method: str, path: str) -> tuple[str, dict, dict[str, str]]:
    for template, ops in spec["paths"].items():
        names = re.findall(r"{([^}]+)}", template)
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "([^/]+)", re.escape(template)) + "$"
        m = re.match(pattern, path)
        if m and method.lower() in ops:
            return template, ops[method.lower()], {n: unquote(v) for n, v in zip(names, m.groups(), strict=True)}
    raise AssertionError(f"{method} {path}: no such operation in the contract")


def _validator(spec: dict, schema: dict) -> Draft202012Validator:
    # The schema's "#/components/..." refs resolve against a root that carries the document's components.
    return Draft202012Validator({**schema, "components": spec.get("components", {})})


def check_request(spec: dict, req: requests.PreparedRequest) -> str:
    """Raise AssertionError when the request is off the contract; the operation's template when it fits."""
    url = urlsplit(req.url)
    assert f"{url.scheme}://{url.netloc}" == BASE, req.url  # only ever our mTLS backend
    template, op, path_values = _operation(spec, req.method, url.path)
    params = {(p["in"], p["name"]): p for p in op.get("parameters", [])}
    query = {k: v for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    for (where, name), p in params.items():
        if where == "path":
            value = path_values[name]
        elif where == "query":
            value = query.pop(name, [None])[-1]
        elif where == "header":
            value = req.headers.get(name)
        else:
            continue
        if value is None:
            assert not p.get("required"), f"{template}: {where} {name} missing"
            continue
        if p.get("schema", {}).get("type") == "integer" and re.fullmatch(r"-?[0-9]+", value):
            value = int(value)  # a query string is text: an integer parameter is judged as the server parses it
        errors = [e.message for e in _validator(spec, p.get("schema", {})).iter_errors(value)]
        assert not errors, f"{template}: {where} {name}: {errors}"
    assert not query, f"{template}: query parameters not in the contract: {sorted(query)}"
    if ("header", "Idempotency-Key") in params:
        assert req.headers.get("Idempotency-Key"), f"{template}: every call carries an Idempotency-Key"
    if op.get("security"):
        assert re.fullmatch(r"Bearer \S+", req.headers.get("Authorization", "")), f"{template}: token missing"
    else:
        assert "Authorization" not in req.headers, f"{template}: a token sent where none is asked for"
    body_spec = op.get("requestBody")
    if req.body is None:
        assert not (body_spec or {}).get("required"), f"{template}: body required"
        return template
    assert body_spec is not None, f"{template}: sends a body the operation does not take"
    assert req.headers.get("Content-Type") == "application/json"
    schema = body_spec["content"]["application/json"]["schema"]
    body = json.loads(req.body)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator(spec, schema).iter_errors(body)]
    assert not errors, f"{template}: body off the contract: {errors}"
    return template


# --- tests ------------------------------------------------------------------------------------------------


def test_every_request_the_client_sends_fits_the_contract(spec, pki):
    c, rec = recording_client(pki)
    every_call(c)
    every_call(c, name=None, ssn=X_ENDING, when=UTC_WHEN)
    templates = {check_request(spec, req) for req in rec.sent}
    # every operation the kiosk uses was exercised
    assert templates == {
        "/v1/sessions", "/v1/sessions/current", "/v1/pension", "/v1/receipts", "/v1/filings/card-loss",
        "/v1/filings/{filing_id}", "/v1/receipts/{receipt_id}/verify", "/v1/health", "/v1/help-requests",
    }
    assert len(rec.sent) == 2 * 14


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.one_of(st.none(), st.text(min_size=1, max_size=64).filter(lambda s: "\x00" not in s)),
    code=st.text(min_size=1, max_size=512),
    token=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1,
                  max_size=64),
    offset=st.integers(-14 * 60, 14 * 60),
)
def test_whatever_a_card_or_code_holds_the_bodies_fit(spec, pki, name, code, token, offset):
    c, rec = recording_client(pki)
    when = WHEN.astimezone(dt.timezone(dt.timedelta(minutes=offset)))
    every_call(c, token=token, name=name, code=code, when=when)
    for req in rec.sent:
        check_request(spec, req)


def test_the_check_has_teeth(spec, pki):
    """What the old client sent would be caught: the credential "sscard", a terminal_id in the body."""
    c, rec = recording_client(pki)
    c.open_session(Credential.SSCARD_PIN, ssn=ELDER)
    [req] = rec.sent
    old = dict(json.loads(req.body), credential="sscard")
    req.prepare_body(None, None, json=old)
    with pytest.raises(AssertionError, match="credential"):
        check_request(spec, req)
    c.report_card_loss("tok", idempotency_key="k" * 8, created_at=WHEN)
    loss = rec.sent[-1]
    loss.prepare_body(None, None, json={"created_at": WHEN.isoformat(), "terminal_id": "T-1"})
    with pytest.raises(AssertionError, match="body off the contract"):
        check_request(spec, loss)
    with pytest.raises(AssertionError, match="no such operation"):
        check_request(spec, requests.Request("GET", f"{BASE}/v1/pension/{ELDER}/x").prepare())
    c.request_help("pin", WHEN)
    helped = rec.sent[-1]
    helped.prepare_body(None, None, json={"screen": "pin", "created_at": WHEN.isoformat(), "ssn": ELDER})
    with pytest.raises(AssertionError, match="body off the contract"):
        check_request(spec, helped)  # a help request carries nothing personal
    with pytest.raises(AssertionError, match="limit"):
        check_request(spec, requests.Request("GET", f"{BASE}/v1/help-requests?limit=500").prepare())
