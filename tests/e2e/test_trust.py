"""The trust model over real TLS on loopback with a real SQLite file: the terminal is its client certificate,
personal data needs a session token of that terminal for that person, receipts are the backend's own words.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from fastapi.routing import APIRoute

from api.idnumber import check_digit
from api.models import AuditLog, Receipt, parse
from backend.pki import issue_client_cert
from backend.server import start_server

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
ELDER = "370102195203140527"
WORKER = "41132219780901441X"


class Terminal:
    """A terminal talking to the mTLS listener with its own certificate."""

    def __init__(self, server, cert: Path, key: Path) -> None:
        self.url = server.url
        self.cert_path = cert
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would replace the pinned CA of a Session
        self.http.verify = str(server.ca_path)
        self.http.cert = (str(cert), str(key))

    def post(self, path, json=None, token=None, **kw):
        return self.http.post(self.url + path, json=json, headers=_auth(token, kw.pop("headers", {})), timeout=5, **kw)

    def get(self, path, token=None, **kw):
        return self.http.get(self.url + path, headers=_auth(token, kw.pop("headers", {})), timeout=5, **kw)

    def request(self, method, path, token=None, **kw):
        headers = _auth(token, kw.pop("headers", {}))
        return self.http.request(method, self.url + path, headers=headers, timeout=5, **kw)

    def open(self, ssn=ELDER, credential="id_card") -> str:
        r = self.post("/v1/sessions", {"credential": credential, "ssn": ssn})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def close(self) -> None:
        self.http.close()


def _auth(token, headers):
    return {**headers, "Authorization": f"Bearer {token}"} if token else headers


@pytest.fixture
def t1(server):
    t = Terminal(server, server.client_cert, server.client_key)
    yield t
    t.close()


@pytest.fixture
def t2(server):
    cert, key = issue_client_cert(server.pki.directory, "T-0002", site_id="site-02")
    t = Terminal(server, cert, key)
    yield t
    t.close()


def _now(clock) -> str:
    return dt.datetime.fromtimestamp(clock(), dt.UTC).isoformat()


def _id_numbers(n: int) -> list[str]:
    """n distinct valid ID numbers (region 370102, one birthday each, check digit computed)."""
    out = []
    day = dt.date(1950, 1, 1)
    for i in range(n):
        first17 = f"370102{day + dt.timedelta(days=i):%Y%m%d}{i % 1000:03d}"
        out.append(first17 + check_digit(first17))
    return out


# --- who may ask for what ----------------------------------------------------------------------------------

PUBLIC = {("GET", "/v1/health"), ("POST", "/v1/sessions"), ("GET", "/v1/receipts/{receipt_id}/verify")}
# The terminal's certificate alone: the catalog, attachments, filings (a queued filing outlives its session; a
# token, when sent, must be the person's) and ratings. Refused without a certificate (test_backend_filings.py).
TERMINAL_ONLY = {
    ("GET", "/v1/services"), ("PUT", "/v1/attachments/{sha256}"), ("POST", "/v1/filings"),
    ("POST", "/v1/ratings"), ("GET", "/v1/ratings/summary"),
    ("POST", "/v1/help-requests"), ("GET", "/v1/help-requests"),  # no personal data: the station asks for help
}
SAMPLE = {"ssn": ELDER, "filing_id": "F20250310-0000000000", "receipt_id": "R20250310-0000000000"}


def _personal_routes(app) -> list[tuple[str, str]]:
    out = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/v1/"):
            continue
        for method in sorted(route.methods):
            if (method, route.path) not in PUBLIC | TERMINAL_ONLY:
                out.append((method, route.path))
    return out


def test_every_personal_endpoint_refuses_a_terminal_without_a_token(server, t1, t2):
    routes = _personal_routes(server.app)
    # The list is read from the app, so a new route is covered the day it is added; these must be in it.
    assert {
        ("POST", "/v1/pension"), ("GET", "/v1/pension/{ssn}"), ("POST", "/v1/receipts"),
        ("POST", "/v1/filings/card-loss"), ("GET", "/v1/filings/{filing_id}"), ("GET", "/v1/audit"),
        ("DELETE", "/v1/sessions/current"), ("POST", "/v1/ecard/resolve"),
    } <= set(routes)
    other_token = t2.open()
    for method, template in routes:
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "x"), template)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        r = t1.request(method, path, json=body, headers={"Idempotency-Key": "key-trust-0001"})
        assert r.status_code == 401 and r.json()["code"] == "token_required", (method, template, r.text)
        r = t1.request(method, path, token="forged-token", json=body)
        assert r.status_code == 401 and r.json()["code"] == "token_invalid", (method, template)
        r = t1.request(method, path, token=other_token, json=body)
        assert r.status_code == 403 and r.json()["code"] == "wrong_terminal", (method, template)


def test_a_thousand_openings_from_one_terminal_are_refused_after_the_burst(server, t1):
    numbers = _id_numbers(1000)
    assert len(set(numbers)) == 1000
    statuses, retry_after = [], set()
    for ssn in numbers:
        r = t1.post("/v1/sessions", {"credential": "id_card", "ssn": ssn})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.json()["code"] == "rate_limited"
            retry_after.add(r.headers["Retry-After"])
    accepted = statuses.count(201)
    print(f"\n1,000 openings from one terminal: {accepted} accepted, {statuses.count(429)} refused (429)")
    assert statuses[:5] == [201] * 5 and accepted == 5 and statuses.count(429) == 995
    assert retry_after == {"3"}
    conn = sqlite3.connect(server.db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 5
    finally:
        conn.close()


def test_rate_limit_refills_one_per_three_seconds_and_is_per_terminal(server, t1, t2, clock):
    for _ in range(5):
        t1.open()
    assert t1.post("/v1/sessions", {"credential": "id_card", "ssn": ELDER}).status_code == 429
    assert t2.post("/v1/sessions", {"credential": "id_card", "ssn": ELDER}).status_code == 201
    clock.t += 3
    assert t1.post("/v1/sessions", {"credential": "id_card", "ssn": ELDER}).status_code == 201
    assert t1.post("/v1/sessions", {"credential": "id_card", "ssn": ELDER}).status_code == 429


def test_token_from_another_terminals_certificate_is_403(t1, t2):
    token = t1.open()
    r = t2.post("/v1/pension", {}, token=token)
    assert r.status_code == 403 and r.json()["code"] == "wrong_terminal"
    assert t1.post("/v1/pension", {}, token=token).status_code == 200


def test_body_ssn_of_another_person_is_403(t1):
    token = t1.open()
    r = t1.post("/v1/pension", {"ssn": WORKER}, token=token)
    assert r.status_code == 403 and r.json()["code"] == "person_mismatch"


def test_terminal_id_in_a_body_is_not_accepted(t1, clock):
    r = t1.post("/v1/sessions", {"credential": "id_card", "ssn": ELDER, "terminal_id": "T-9999"})
    assert r.status_code == 422 and r.json()["fields"][0]["type"] == "extra_forbidden"
    token = t1.open()
    t1.post("/v1/pension", {}, token=token)
    for path in ("/v1/receipts", "/v1/filings/card-loss"):
        body = {"created_at": _now(clock), "terminal_id": "T-9999", "site_id": "elsewhere"}
        if path == "/v1/receipts":
            body["service"] = "pension_query"
        r = t1.post(path, body, token=token, headers={"Idempotency-Key": "key-trust-0002"})
        assert r.status_code == 422, path


def test_card_loss_after_a_card_and_pin_session(server, t1, clock):
    token = t1.open(WORKER, credential="sscard_pin")
    r = t1.post("/v1/filings/card-loss", {"created_at": _now(clock)}, token=token,
                headers={"Idempotency-Key": "key-loss-sscard-1"})
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["status"] == "accepted" and f["card_status"] == "temporarily_suspended"
    conn = sqlite3.connect(server.db_path)
    try:
        row = conn.execute("SELECT credential, terminal_id, site_id FROM filings WHERE filing_id = ?",
                           (f["filing_id"],)).fetchone()
    finally:
        conn.close()
    assert row == ("sscard_pin", "demo-terminal-01", "demo-site-01")


def test_receipts_carry_the_backends_own_lines(t1, clock):
    token = t1.open()
    r = t1.post("/v1/receipts", {"service": "pension_query", "created_at": _now(clock)}, token=token,
                headers={"Idempotency-Key": "key-receipt-0001"})
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_vouch"
    assert t1.post("/v1/pension", {}, token=token).status_code == 200
    forged = {"service": "pension_query", "created_at": _now(clock), "lines": [["月领取金额", "9999.00元"]],
              "summary": {"title": "伪造"}}
    r = t1.post("/v1/receipts", forged, token=token, headers={"Idempotency-Key": "key-receipt-0002"})
    assert r.status_code == 422
    r = t1.post("/v1/receipts", {"service": "pension_query", "created_at": _now(clock)}, token=token,
                headers={"Idempotency-Key": "key-receipt-0003"})
    rec = parse(Receipt, r.content)
    assert rec.title == "养老金查询" and ("月领取金额", "238.50元") in rec.lines
    assert (rec.terminal_id, rec.site_id) == ("demo-terminal-01", "demo-site-01")  # from the certificate


def test_demo_endpoints_only_with_demo(tmp_path, t1):
    assert t1.get("/v1/demo/ecard-code/elder").status_code == 404
    assert t1.post("/v1/demo/ecard-revoke", {"code": "x"}).status_code == 404
    demo = start_server(tmp_path / "demo", demo=True)
    try:
        r = requests.get(f"{demo.url}/v1/demo/ecard-code/elder", verify=str(demo.ca_path),
                         cert=(str(demo.client_cert), str(demo.client_key)), timeout=5)
        assert r.status_code == 200 and r.json()["code"].startswith("ESSC1.")
    finally:
        demo.stop()


def test_an_ecard_code_opens_one_session_from_any_terminal(tmp_path):
    demo = start_server(tmp_path / "demo1", demo=True)
    cert2, key2 = issue_client_cert(demo.pki.directory, "T-0002", site_id="site-02")
    a, b = Terminal(demo, demo.client_cert, demo.client_key), Terminal(demo, cert2, key2)
    try:
        code = a.get("/v1/demo/ecard-code/elder").json()["code"]
        assert a.post("/v1/sessions", {"credential": "ecard", "code": code}).status_code == 201
        for t in (a, b):  # a photographed code is spent: not here again, not at the next station
            r = t.post("/v1/sessions", {"credential": "ecard", "code": code})
            assert r.status_code == 410 and r.json()["code"] == "ecard_revoked"
    finally:
        a.close()
        b.close()
        demo.stop()


def test_without_demo_the_backend_knows_no_demo_people(tmp_path):
    bare = start_server(tmp_path / "bare")
    t = Terminal(bare, bare.client_cert, bare.client_key)
    try:
        r = t.post("/v1/sessions", {"credential": "id_card", "ssn": ELDER})
        assert r.status_code == 201 and r.json()["person"] == {"name": "", "ssn": ELDER}
        assert t.post("/v1/pension", {}, token=r.json()["token"]).json()["code"] == "no_record"
    finally:
        t.close()
        bare.stop()


def test_a_revoked_certificate_opens_nothing(server, t1, t2):
    token1, token2 = t1.open(), t2.open()
    t = server.revoke(t2.cert_path)
    assert (t.terminal_id, t.site_id) == ("T-0002", "site-02")
    for r in (
        t2.post("/v1/sessions", {"credential": "id_card", "ssn": ELDER}),
        t2.post("/v1/pension", {}, token=token2),
        t2.get("/v1/audit", token=token2),
    ):
        assert r.status_code == 403 and r.json()["code"] == "certificate_revoked"
    assert t1.post("/v1/pension", {}, token=token1).status_code == 200  # other terminals carry on
    # Re-enrolled (a new certificate for the same terminal id): it works again, the old sessions do not.
    cert, key = issue_client_cert(server.pki.directory, "T-0002", site_id="site-02", force=True)
    fresh = Terminal(server, cert, key)
    try:
        r = fresh.post("/v1/pension", {}, token=token2)
        assert r.status_code == 401 and r.json()["code"] == "token_invalid"
        assert fresh.post("/v1/pension", {}, token=fresh.open()).status_code == 200
    finally:
        fresh.close()


def test_mtls_listener_refuses_a_client_without_a_certificate(server):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{server.url}/v1/health", verify=str(server.ca_path), timeout=5)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"credential": "id_card", "ssn": "\\ud800"}', 422),
        (b'{"credential": "id_card", "ssn": "370102195203140527", "name": "\\u0000"}', 422),
        (b"[" * 1000 + b"]" * 1000, 422),
        (b'{"credential": "id_card", "name": "' + b"x" * (64 * 1024) + b'"}', 413),
    ],
    ids=["lone-surrogate", "nul", "deep-1000", "too-large"],
)
def test_odd_bodies_over_tls(t1, raw, status):
    r = t1.http.post(t1.url + "/v1/sessions", data=raw, headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == status
    assert r.json()["code"] == ("invalid_request" if status == 422 else "body_too_large")
    assert t1.get("/v1/health").status_code == 200  # and the server is fine


def test_the_audit_log_lists_the_accesses(t1, t2, clock):
    token = t1.open(credential="sscard_pin")
    t1.post("/v1/pension", {}, token=token)
    t1.post("/v1/receipts", {"service": "pension_query", "created_at": _now(clock)}, token=token,
            headers={"Idempotency-Key": "key-audit-00001"})
    t2.open()  # the same person at another terminal
    log = parse(AuditLog, t1.get("/v1/audit", token=token).content)
    assert [(e.action, e.terminal_id, e.site_id) for e in log.entries] == [
        ("session_opened", "T-0002", "site-02"),
        ("receipt_issued", "demo-terminal-01", "demo-site-01"),
        ("pension_read", "demo-terminal-01", "demo-site-01"),
        ("session_opened", "demo-terminal-01", "demo-site-01"),
    ]


def test_keys_are_0600_files_outside_the_database(server, t1):
    keys = sorted((server.db_path.parent / "keys").glob("*.key"))
    assert [k.name for k in keys] == ["ecard_hmac.key", "receipt_hmac.key"]
    data = b"".join(p.read_bytes() for p in server.db_path.parent.glob("backend.sqlite3*"))
    for k in keys:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600
        secret = k.read_text().strip()
        assert secret.encode() not in data and bytes.fromhex(secret) not in data
    conn = sqlite3.connect(server.db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM meta WHERE key LIKE '%hmac%'").fetchone()[0] == 0
    finally:
        conn.close()


def test_command_line_prints_the_listening_lines(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "--data", str(tmp_path / "cli"), "--port", "0", "--verify-port", "0",
         "--demo"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(5)]  # bounded by the test timeout
        assert re.fullmatch(r"backend listening on https://127\.0\.0\.1:\d+", lines[0]), lines
        assert lines[1].startswith("  CA:") and lines[1].endswith("ca.pem")
        assert lines[2].startswith("  client cert:") and lines[3].startswith("  client key:")
        assert re.fullmatch(r"verify listening on https://127\.0\.0\.1:\d+", lines[4]), lines
        api, verify = lines[0].split()[-1], lines[4].split()[-1]
        assert api != verify
        ca, cert, key = (line.split(":", 1)[1].strip() for line in lines[1:4])
        assert requests.get(f"{api}/v1/demo/ecard-code/elder", verify=ca, cert=(cert, key), timeout=5).ok
        v = requests.get(f"{verify}/v1/receipts/R1/verify?sig=x", verify=ca, timeout=5)
        assert v.status_code == 200 and v.json()["genuine"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            proc.stdout.close()
            proc.stderr.close()
    assert proc.returncode == 0
    revoke = subprocess.run(
        [sys.executable, "-m", "backend", "--data", str(tmp_path / "cli"), "--revoke-cert", cert],
        cwd=ROOT, capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert revoke.returncode == 0 and revoke.stdout.startswith("revoked the certificate of terminal demo-terminal-01")
