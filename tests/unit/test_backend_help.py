"""请工作人员帮助 at the backend: POST /v1/help-requests stores who (the certificate's terminal and site), which
screen and when, nothing personal; GET /v1/help-requests lists them for the county's view, newest first."""

from __future__ import annotations

import datetime as dt
import sqlite3
import warnings

import pytest

from api.models import HelpRequestList, HelpRequestStored, parse
from backend.app import create_app
from backend.identity import with_cert_pem

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(60)

BASE = "https://kiosk-api.example"
NOW = "2025-03-10T17:30:00+08:00"


@pytest.fixture
def app(tmp_path, clock):
    return create_app(tmp_path / "backend.sqlite3", BASE, clock=clock, today=dt.date(2025, 3, 10))


def _client(app, pem=None):
    return TestClient(with_cert_pem(app, pem) if pem else app, base_url=BASE)


def test_a_help_request_is_stored_with_the_certificates_terminal_and_site(app, certs, clock, tmp_path):
    with _client(app, certs["t1"]) as c:
        r = c.post("/v1/help-requests", json={"screen": "pin", "created_at": NOW})
        assert r.status_code == 201
        stored = parse(HelpRequestStored, r.content)
        assert stored.request_id.startswith("H20250310-")
    with sqlite3.connect(tmp_path / "backend.sqlite3") as conn:
        rows = conn.execute("SELECT * FROM help_requests").fetchall()
        cols = [d[0] for d in conn.execute("SELECT * FROM help_requests").description]
    assert cols == ["seq", "request_id", "terminal_id", "site_id", "screen", "created_at", "received_at"]
    assert [r[1:5] for r in rows] == [(stored.request_id, "T-0001", "370102-001", "pin")]


def test_the_list_is_newest_first_across_the_county_and_filters_by_site(app, certs, clock):
    with _client(app, certs["t1"]) as c1, _client(app, certs["t2"]) as c2:
        ids = []
        for c, screen in ((c1, "idle"), (c2, "menu"), (c1, "pension")):
            clock.t += 5
            ids.append(c.post("/v1/help-requests", json={"screen": screen, "created_at": NOW}).json()["request_id"])
        got = parse(HelpRequestList, c2.get("/v1/help-requests").content)
        assert [r.request_id for r in got.requests] == ids[::-1]
        assert [(r.terminal_id, r.screen) for r in got.requests] == [
            ("T-0001", "pension"), ("T-0002", "menu"), ("T-0001", "idle")]
        assert got.requests[0].received_at > got.requests[2].received_at
        one = parse(HelpRequestList, c2.get("/v1/help-requests", params={"site_id": "370102-002"}).content)
        assert [r.screen for r in one.requests] == ["menu"]
        assert len(parse(HelpRequestList, c1.get("/v1/help-requests", params={"limit": 1}).content).requests) == 1
        assert c1.get("/v1/help-requests", params={"limit": 0}).status_code == 422
        assert c1.get("/v1/help-requests", params={"limit": 201}).status_code == 422


def test_only_a_terminal_may_ask_or_read(app):
    with _client(app) as bare:
        r = bare.post("/v1/help-requests", json={"screen": "pin", "created_at": NOW})
        assert r.status_code == 401 and r.json()["code"] == "certificate_required"
        assert bare.get("/v1/help-requests").status_code == 401


@pytest.mark.parametrize("body", [
    {"screen": "pin", "created_at": NOW, "ssn": "370102195203140527"},  # nothing personal fits
    {"screen": "pin", "created_at": NOW, "terminal_id": "T-9"},  # who it is comes from the certificate
    {"screen": "../x", "created_at": NOW},
    {"screen": "PIN", "created_at": NOW},
    {"screen": "a" * 33, "created_at": NOW},
    {"screen": "pin", "created_at": "2025-03-10T17:30:00"},  # no zone
    {"screen": "pin"},
])
def test_bad_bodies_are_refused(app, certs, body):
    with _client(app, certs["t1"]) as c:
        assert c.post("/v1/help-requests", json=body).status_code == 422


def test_a_time_far_from_the_backends_is_refused(app, certs):
    with _client(app, certs["t1"]) as c:
        r = c.post("/v1/help-requests", json={"screen": "pin", "created_at": "2031-03-10T17:30:00+08:00"})
        assert r.status_code == 422


# --- the kiosk's client ------------------------------------------------------------------------------------


def _answering(status: int, body: bytes, headers: dict | None = None):
    """A requests adapter that answers every request with this status and JSON body, and keeps what was sent."""
    import requests
    from requests.adapters import BaseAdapter

    class Answer(BaseAdapter):
        def __init__(self) -> None:
            super().__init__()
            self.sent: list = []

        def send(self, request, **kwargs):
            self.sent.append(request)
            resp = requests.Response()
            resp.status_code, resp._content, resp._content_consumed = status, body, True
            resp.headers.update({"Content-Type": "application/json", **(headers or {})})
            resp.url, resp.request = request.url, request
            return resp

        def close(self):
            pass

    return Answer()


def test_the_client_sends_the_screen_and_time_and_no_token(certs, tmp_path):
    from backend.pki import ensure_demo_pki
    from kiosk.backend_client import BackendClient, BackendFailure, FailureKind

    pki = ensure_demo_pki(tmp_path / "pki")
    base = "https://127.0.0.1:8443"
    when = dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    c = BackendClient(base, pki.ca_cert, pki.client_cert, pki.client_key, retries=0)
    ok = _answering(201, b'{"request_id": "H20250310-0A1B2C3D4E"}')
    c.session.mount(base + "/", ok)
    got = c.request_help("checking_pin", when)
    assert isinstance(got, HelpRequestStored) and got.request_id == "H20250310-0A1B2C3D4E"
    [req] = ok.sent
    assert req.method == "POST" and req.url == base + "/v1/help-requests"
    assert "Authorization" not in req.headers
    import json

    assert json.loads(req.body) == {"screen": "checking_pin", "created_at": "2025-03-10T17:30:00+08:00"}
    down = _answering(503, b'{"code": "server_error", "message": "x"}')
    c.session.mount(base + "/", down)
    failed = c.request_help("pin", when)
    assert isinstance(failed, BackendFailure) and failed.kind is FailureKind.SERVER_ERROR


# --- the per-terminal limit --------------------------------------------------------------------------------


def _ask(c):
    return c.post("/v1/help-requests", json={"screen": "idle", "created_at": NOW})


def test_more_than_ten_requests_in_ten_minutes_from_one_terminal_are_refused(app, certs, clock, tmp_path):
    from backend.app import HELP_LIMIT, HELP_WINDOW

    with _client(app, certs["t1"]) as c1, _client(app, certs["t2"]) as c2:
        for _ in range(HELP_LIMIT):
            assert _ask(c1).status_code == 201
            clock.t += 30
        r = _ask(c1)  # 300 s after the first of the ten
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert r.headers["Retry-After"] == str(int(HELP_WINDOW.total_seconds()) - 300)
        assert _ask(c2).status_code == 201  # another terminal is not held back
        clock.t += int(r.headers["Retry-After"])
        assert _ask(c1).status_code == 201  # the first has left the window: one more fits
        assert _ask(c1).status_code == 429
    with sqlite3.connect(tmp_path / "backend.sqlite3") as conn:
        per_terminal = dict(conn.execute("SELECT terminal_id, count(*) FROM help_requests GROUP BY terminal_id"))
    assert per_terminal == {"T-0001": HELP_LIMIT + 1, "T-0002": 1}  # nothing stored for a refusal


def test_requests_stamped_while_the_clock_was_ahead_do_not_hold_a_terminal_back(app, certs, clock):
    from backend.app import HELP_LIMIT

    with _client(app, certs["t1"]) as c:
        clock.t += 86400  # the backend's clock a day ahead (then put right)
        for _ in range(HELP_LIMIT):
            assert _ask(c).status_code == 201
        clock.t -= 86400
        assert _ask(c).status_code == 201  # ten rows "from tomorrow" are not ten in the last ten minutes


def test_the_limit_survives_a_restart(app, certs, clock, tmp_path):
    from backend.app import HELP_LIMIT

    with _client(app, certs["t1"]) as c:
        for _ in range(HELP_LIMIT):
            assert _ask(c).status_code == 201
    again = create_app(tmp_path / "backend.sqlite3", BASE, clock=clock, today=dt.date(2025, 3, 10))
    with _client(again, certs["t1"]) as c:
        assert _ask(c).status_code == 429


def test_the_kiosk_client_reports_a_refused_help_request_as_rate_limited(tmp_path):
    from backend.pki import ensure_demo_pki
    from kiosk.backend_client import BackendClient, BackendFailure, FailureKind

    pki = ensure_demo_pki(tmp_path / "pki")
    base = "https://127.0.0.1:8443"
    c = BackendClient(base, pki.ca_cert, pki.client_cert, pki.client_key, retries=0)
    c.session.mount(base + "/", _answering(429, b'{"code": "rate_limited", "message": "x"}', {"Retry-After": "1"}))
    got = c.request_help("pin", dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.UTC))
    # the runtime turns any failure into HelpRequested(False): the panel says to phone
    assert isinstance(got, BackendFailure) and got.kind is FailureKind.RATE_LIMITED
