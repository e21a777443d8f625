"""The reference backend's API through FastAPI's TestClient on a real temporary SQLite file.

The TestClient has no TLS: `with_cert_pem` presents a real client certificate (from the demo PKI) to the app the
way the mTLS listener does (the ASGI "tls" extension). The same rules over real TLS: tests/e2e/test_trust.py.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import stat
import warnings
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.models import AuditLog, CardLossFiling, Pension, Receipt, SessionOpened, parse
from backend.app import ServerControl, _parse_ecard, create_app
from backend.db import PERSONAS_PATH, Database, ECardUsed, KeyFileError, key_file
from backend.identity import with_cert_pem
from backend.pki import issue_client_cert

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2 is not ours to fix
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(60)

ELDER = "370102195203140527"  # receiving, 238.50 a month
WORKER = "41132219780901441X"  # contributing, not receiving
YOUNG = "110105200306150829"  # no pension record
NOT_A_CARD_HOLDER = "522732198811230424"  # valid check digit; has an ID card but no SSC
TODAY = dt.date(2025, 3, 10)
NOW = "2025-03-10T17:30:00+08:00"
BASE = "https://kiosk-api.example"


@pytest.fixture
def control() -> ServerControl:
    return ServerControl()


@pytest.fixture
def app(db_path, clock, control):
    # A roomy session budget: these tests open many sessions at one instant of the fake clock. The real
    # limit (5, then one per 3 s) is tested on its own below and over TLS in tests/e2e/test_trust.py.
    return create_app(db_path, BASE, clock=clock, today=TODAY, control=control, demo=True, session_burst=1000)


def _client(app, pem):
    return TestClient(with_cert_pem(app, pem), base_url=BASE)


@pytest.fixture
def client(app, certs):
    with _client(app, certs["t1"]) as c:
        yield c


@pytest.fixture
def other(app, certs):
    """The same backend seen from another terminal (another certificate)."""
    with _client(app, certs["t2"]) as c:
        yield c


def open_session(client, ssn=ELDER, credential="id_card", **extra):
    r = client.post("/v1/sessions", json={"credential": credential, "ssn": ssn, **extra})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def read_pension(client, auth):
    r = client.post("/v1/pension", json={}, headers=auth)
    return r


def receipt(client, auth, key="key-0000000001", **over):
    body = {"service": "pension_query", "created_at": NOW, **over}
    return client.post("/v1/receipts", json=body, headers={**auth, "Idempotency-Key": key})


def report(client, auth, key="loss-key-0001", **over):
    body = {"created_at": NOW, **over}
    return client.post("/v1/filings/card-loss", json=body, headers={**auth, "Idempotency-Key": key})


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# --- health, seeding, keys ---------------------------------------------------------------------------


def test_health(client):
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["api_version"] == "1"


def test_database_is_wal_and_seeding_is_idempotent(db_path, client):
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        persons = conn.execute("SELECT COUNT(*) FROM persons").fetchone()[0]
        payments = conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0]
    finally:
        conn.close()
    cards = json.loads(PERSONAS_PATH.read_text(encoding="utf-8"))["cards"]
    receiving = [c for c in cards if c["pension"] and c["pension"]["receiving"]]
    assert persons == len(cards)
    assert payments == 12 * len(receiving)
    Database(db_path).seed_personas(PERSONAS_PATH, TODAY)  # second seeding adds nothing
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0] == payments
    finally:
        conn.close()


def test_keys_are_0600_files_and_not_in_the_database(db_path, client):
    keys = sorted((db_path.parent / "keys").iterdir())
    assert [k.name for k in keys] == ["ecard_hmac.key", "receipt_hmac.key"]
    raw = db_path.read_bytes() + b"".join(p.read_bytes() for p in db_path.parent.glob("*.sqlite3-*"))
    for k in keys:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600
        assert k.read_text().strip().encode() not in raw
    assert stat.S_IMODE((db_path.parent / "keys").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("content", "mode", "why"),
    [
        (b"not hex at all\n", 0o600, "not a 32-byte hex key"),
        (b"abcd\n", 0o600, "not a 32-byte hex key"),
        (b"", 0o600, "not a 32-byte hex key"),
        (("ab" * 32 + "\n").encode(), 0o640, "readable by group or others"),
        (("ab" * 32 + "\n").encode(), 0o604, "readable by group or others"),
    ],
)
def test_a_damaged_or_exposed_key_stops_start_up_and_is_kept(tmp_path, clock, content, mode, why):
    """A new key would make every receipt printed so far verify as forged: never replace one silently."""
    keys = tmp_path / "keys"
    keys.mkdir()
    bad = keys / "receipt_hmac.key"
    bad.write_bytes(content)
    bad.chmod(mode)
    with pytest.raises(KeyFileError, match=why):
        create_app(tmp_path / "b.sqlite3", BASE, clock=clock, today=TODAY)
    assert bad.read_bytes() == content


def test_an_unreadable_key_stops_start_up(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "receipt_hmac.key").mkdir(mode=0o700)  # reading it fails whoever runs the test (root ignores mode 000)
    with pytest.raises(KeyFileError, match="cannot be read|not a 32-byte"):
        key_file(keys, "receipt_hmac")


def test_a_missing_key_is_made_once_and_then_read(tmp_path):
    first = key_file(tmp_path / "keys", "receipt_hmac")
    assert key_file(tmp_path / "keys", "receipt_hmac") == first and len(first) == 32
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["receipt_hmac.key"]


def test_a_key_kept_in_the_database_by_an_older_version_moves_to_a_file(tmp_path, clock):
    db_path = tmp_path / "old.sqlite3"
    secret = "ab" * 32
    Database(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO meta (key, value) VALUES ('receipt_hmac', ?)", (secret,))
    conn.commit()
    conn.close()
    create_app(db_path, BASE, clock=clock, today=TODAY)
    assert (tmp_path / "keys" / "receipt_hmac.key").read_text().strip() == secret
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM meta WHERE key = 'receipt_hmac'").fetchone()[0] == 0
    conn.close()


# --- who is calling ------------------------------------------------------------------------------------


def test_without_a_certificate_nothing_personal_opens(app):
    with TestClient(app, base_url=BASE) as c:  # no tls extension at all
        assert c.get("/v1/health").status_code == 200
        r = c.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER})
        assert r.status_code == 401 and r.json()["code"] == "certificate_required"
        assert c.get("/v1/audit").json()["code"] == "certificate_required"


def test_a_certificate_without_a_site_is_not_a_terminal(app, tmp_path):
    from cryptography.hazmat.primitives import serialization

    from backend.pki import _ensure_ca, _issue

    ca_key, ca_cert, _ = _ensure_ca(tmp_path)
    for kwargs in ({}, {"server_hosts": ("127.0.0.1",)}):  # no OU: a bare CN, or the server's own certificate
        _, cert = _issue(ca_key, ca_cert, "T-0009", **kwargs)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        with _client(app, pem) as c:
            r = c.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER})
            assert r.status_code == 401 and r.json()["code"] == "certificate_required"


def test_a_certificate_name_with_a_trailing_newline_is_not_a_terminal(app, tmp_path):
    from cryptography.hazmat.primitives import serialization

    from backend.identity import terminal_from_pem
    from backend.pki import _ensure_ca, _issue

    ca_key, ca_cert, _ = _ensure_ca(tmp_path)
    for cn, ou in (("T-0009\n", "370102-001"), ("T-0009", "370102-001\n")):
        _, cert = _issue(ca_key, ca_cert, cn, unit=ou)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        assert terminal_from_pem(pem) is None
        with _client(app, pem) as c:
            r = c.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER})
            assert r.status_code == 401 and r.json()["code"] == "certificate_required"


def test_enrolment_refuses_ids_with_a_trailing_newline(tmp_path):
    for terminal, site in (("T-0009\n", "370102-001"), ("T-0009", "370102-001\n")):
        with pytest.raises(ValueError):
            issue_client_cert(tmp_path, terminal, site_id=site)


def test_a_header_cannot_stand_in_for_the_certificate(app):
    with TestClient(app, base_url=BASE) as c:
        r = c.post(
            "/v1/sessions",
            json={"credential": "id_card", "ssn": ELDER},
            headers={"X-Client-Cert": "CN=T-0001", "X-Forwarded-Client-Cert": "CN=T-0001"},
        )
        assert r.status_code == 401


# --- sessions ------------------------------------------------------------------------------------------


def test_session_opened_for_id_card_names_the_record(client):
    r = client.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER, "name": "某某"})
    assert r.status_code == 201
    s = parse(SessionOpened, r.content)
    assert s.person.name == "王秀兰" and s.person.ssn == ELDER and s.credential == "id_card"
    assert s.expires_at == dt.datetime(2025, 3, 10, 9, 45, tzinfo=dt.UTC)  # 15 minutes
    assert len(s.token) >= 40


def test_session_without_a_record_keeps_the_name_as_given(client):
    r = client.post("/v1/sessions", json={"credential": "id_card", "ssn": "11010519491231002X", "name": "赵某"})
    assert r.status_code == 201
    assert r.json()["person"] == {"name": "赵某", "ssn": "11010519491231002X"}


def test_a_receipt_never_carries_a_name_the_backend_does_not_know(client, db_path):
    """For a person without a record the terminal's name is echoed back to it, but not recorded: the receipt and
    its verification show the masked ID only."""
    ssn = "11010519491231002X"
    auth = open_session(client, ssn=ssn, name="赵某")
    assert read_pension(client, auth).status_code == 404
    rec = receipt(client, auth, "key-noname-0001").json()
    v = client.get(_path(rec["verify_url"])).json()
    assert v["genuine"] is True and v["name_masked"] is None and v["id_masked"] == "1101**********002X"
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT name FROM receipts").fetchall() == [(None,)]
        assert conn.execute("SELECT name FROM sessions").fetchall() == [("",)]
    page = client.get(_path(rec["verify_url"]), headers={"Accept": "text/html"}).text
    assert "赵" not in page


def test_session_open_refuses_bad_bodies_without_echo(client):
    bad = ELDER[:-1] + "1"
    cases = [
        {"credential": "id_card", "ssn": bad},
        {"credential": "id_card"},
        {"credential": "ecard"},
        {"credential": "ecard", "code": "x", "ssn": ELDER},
        {"credential": "password", "ssn": ELDER},
        {"credential": "id_card", "ssn": ELDER, "terminal_id": "T-9999"},
        {"credential": "id_card", "ssn": ELDER, "site_id": "elsewhere"},
    ]
    for body in cases:
        r = client.post("/v1/sessions", json=body)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", body
        assert bad not in r.text and ELDER not in r.text


@pytest.mark.parametrize(
    "ssn",
    [
        ELDER + "\n",
        " " + ELDER,
        "１１０１０５１９４９１２３１００２X",  # full-width digits: \d matched them, and the check digit X is ASCII
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic digits
    ],
)
def test_id_numbers_are_exactly_18_ascii_characters(client, ssn):
    from api.idnumber import is_valid

    assert is_valid(ELDER) and not is_valid(ssn)
    r = client.post("/v1/sessions", json={"credential": "id_card", "ssn": ssn})
    assert r.status_code == 422 and r.json()["fields"][0]["loc"] == ["body", "ssn"]


def test_session_open_rate_limit_is_a_burst_of_five_then_one_per_three_seconds(tmp_path, clock, certs):
    app = create_app(tmp_path / "rl.sqlite3", BASE, clock=clock, today=TODAY, demo=True)
    with _client(app, certs["t1"]) as client, _client(app, certs["t2"]) as other:
        _rate_limit(client, other, clock)


def _rate_limit(client, other, clock):
    codes = [client.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER}).status_code for _ in range(7)]
    assert codes == [201] * 5 + [429] * 2
    r = client.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER})
    assert r.json()["code"] == "rate_limited" and r.headers["Retry-After"] == "3"
    assert other.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER}).status_code == 201  # per terminal
    clock.t += 3
    assert client.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER}).status_code == 201
    assert client.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER}).status_code == 429
    # Malformed attempts spend tokens too: guessing costs the same.
    clock.t += 3
    assert client.post("/v1/sessions", json={"credential": "ecard", "code": "x"}).status_code == 404
    assert client.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER}).status_code == 429


def test_bodies_the_guard_refuses_spend_session_tokens_too(tmp_path, clock, certs):
    """The limit runs before the body guard: odd bodies are no free way to probe."""
    app = create_app(tmp_path / "rl.sqlite3", BASE, clock=clock, today=TODAY, demo=True)
    with _client(app, certs["t1"]) as client:
        for _ in range(5):
            r = client.post("/v1/sessions", content=b'{"credential": "ecard", "code": "\\u0000"}',
                            headers={"Content-Type": "application/json"})
            assert r.status_code == 422 and r.json()["fields"][0]["type"] == "string_nul"
        r = client.post("/v1/sessions", content=b"\xff", headers={"Content-Type": "application/json"})
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert client.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER}).status_code == 429


def test_token_lifecycle(client, clock):
    auth = open_session(client)
    assert read_pension(client, auth).status_code == 200
    clock.t += 15 * 60
    r = read_pension(client, auth)
    assert r.status_code == 401 and r.json()["code"] == "token_expired"
    auth = open_session(client)
    assert client.delete("/v1/sessions/current", headers=auth).status_code == 204
    r = read_pension(client, auth)
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"
    r = read_pension(client, {"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"
    r = client.post("/v1/pension", json={})
    assert r.status_code == 401 and r.json()["code"] == "token_required"
    assert r.headers["WWW-Authenticate"] == "Bearer"


def _session_rows(db_path):
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT name, ssn, pension_json, closed FROM sessions ORDER BY opened_at").fetchall()


def test_a_closed_session_keeps_no_personal_data(client, db_path):
    auth = open_session(client)
    read_pension(client, auth)
    assert _session_rows(db_path)[0][:2] == ("王秀兰", ELDER) and _session_rows(db_path)[0][2]
    assert client.delete("/v1/sessions/current", headers=auth).status_code == 204
    assert _session_rows(db_path) == [("", "", None, 1)]
    with sqlite3.connect(db_path) as conn:  # what the audit needs stays in the audit table
        assert [r[0] for r in conn.execute("SELECT action FROM audit WHERE ssn = ?", (ELDER,))] == [
            "session_opened", "pension_read", "session_closed",
        ]


def test_revocation_clears_the_sessions_personal_data(app, client, certs, db_path, clock):
    from backend.identity import terminal_from_pem

    auth = open_session(client)
    read_pension(client, auth)
    t = terminal_from_pem(certs["t1"])
    assert t is not None
    app.state.db.revoke_certificate(t.fingerprint, t.terminal_id, t.site_id, NOW)
    assert _session_rows(db_path) == [("", "", None, 1)]


def test_expired_sessions_forget_personal_data_without_a_new_opening(client, other, db_path, clock):
    auth = open_session(client)
    read_pension(client, auth)
    clock.t += 15 * 60 + 1
    assert read_pension(client, auth).json()["code"] == "token_expired"  # any authenticated request sweeps
    assert _session_rows(db_path) == [("", "", None, 0)]
    assert read_pension(client, auth).json()["code"] == "token_expired"  # the row still answers
    clock.t += 86400
    other.get("/v1/audit")  # unauthenticated for this token, but it sweeps
    assert _session_rows(db_path) == []


def test_token_of_another_terminal_is_refused(client, other):
    auth = open_session(client)
    r = read_pension(other, auth)
    assert r.status_code == 403 and r.json()["code"] == "wrong_terminal"
    assert other.get("/v1/audit", headers=auth).status_code == 403
    assert other.delete("/v1/sessions/current", headers=auth).status_code == 403
    assert read_pension(client, auth).status_code == 200  # still fine where it was opened


def test_only_the_tokens_person(client):
    auth = open_session(client)
    r = client.post("/v1/pension", json={"ssn": WORKER}, headers=auth)
    assert r.status_code == 403 and r.json()["code"] == "person_mismatch"
    assert client.post("/v1/pension", json={"ssn": ELDER.lower()}, headers=auth).status_code == 200


def test_retired_routes_only_refuse(client):
    assert client.get(f"/v1/pension/{ELDER}").status_code == 401
    assert client.post("/v1/ecard/resolve", json={"code": "x"}).status_code == 401
    auth = open_session(client)
    r = client.get(f"/v1/pension/{ELDER}", headers=auth)
    assert r.status_code == 410 and r.json()["code"] == "gone"
    assert client.post("/v1/ecard/resolve", json={"code": "x"}, headers=auth).json()["code"] == "gone"


# --- pension -------------------------------------------------------------------------------------------


def test_pension_of_a_receiving_elder(client):
    r = read_pension(client, open_session(client))
    assert r.status_code == 200
    p = r.json()
    assert p["insurance_type"] == "城乡居民基本养老保险"
    assert p["status"] == "领取中"
    assert p["contribution_tier"] == "每年500元档"
    assert p["years_contributed"] == 15
    assert p["account_balance"] == "7532.40"
    assert p["receiving"] is True
    assert p["monthly_amount"] == "238.50"
    assert p["certification_status"] == "已认证"
    assert p["certification_due"] == "2027-03-31"
    months = [x["month"] for x in p["payments"]]
    # The 12 months before March 2025, newest first (March itself is not paid yet).
    assert months == [f"2025-{m:02d}" for m in (2, 1)] + [f"2024-{m:02d}" for m in range(12, 2, -1)]
    assert {x["amount"] for x in p["payments"]} == {"238.50"}
    assert {x["status"] for x in p["payments"]} == {"已发放"}
    from decimal import Decimal

    assert parse(Pension, r.content).monthly_amount == Decimal("238.50")


def test_pension_without_a_body_and_of_a_contributor(client):
    p = client.post("/v1/pension", headers=open_session(client, WORKER.lower())).json()
    assert p["receiving"] is False and p["monthly_amount"] is None and p["payments"] == []
    assert p["certification_due"] is None


def test_no_record_is_404_with_stable_code(client):
    r = read_pension(client, open_session(client, YOUNG))
    assert r.status_code == 404 and r.json()["code"] == "no_record"


def test_unknown_route_has_code(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


# --- receipts: written by the backend --------------------------------------------------------------------


def test_nothing_read_nothing_to_vouch(client, db_path):
    auth = open_session(client)
    r = receipt(client, auth)
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_vouch"
    assert Database(db_path).count_receipts() == 0


def test_receipt_carries_the_backends_lines(client):
    auth = open_session(client)
    read_pension(client, auth)
    r = receipt(client, auth)
    assert r.status_code == 200
    rec = parse(Receipt, r.content)
    assert rec.title == "养老金查询" and rec.service == "pension_query"
    assert rec.terminal_id == "T-0001" and rec.site_id == "370102-001"
    assert rec.lines == [
        ("险种", "城乡居民基本养老保险"), ("参保状态", "领取中"), ("累计缴费年限", "15年"), ("月领取金额", "238.50元"),
        ("个人账户余额", "7532.40元"), ("资格认证", "已认证（2027-03-31前）"),
    ]


def test_a_terminal_cannot_choose_the_receipt_text(client, db_path):
    auth = open_session(client)
    read_pension(client, auth)
    for extra in (
        {"summary": {"title": "伪造", "月领取金额": "9999.00元"}},
        {"lines": [["月领取金额", "9999.00元"]]},
        {"title": "伪造"},
        {"terminal_id": "T-9999"},
        {"ssn": WORKER},
    ):
        r = receipt(client, auth, **extra)
        assert r.status_code == 422 and r.json()["fields"][0]["type"] == "extra_forbidden", extra
    assert receipt(client, auth, service="unemployment_reg").status_code == 422
    assert Database(db_path).count_receipts() == 0


def test_no_record_receipt_says_so(client):
    auth = open_session(client, YOUNG)
    read_pension(client, auth)
    assert receipt(client, auth).json()["lines"] == [["查询结果", "暂无养老保险参保记录"]]


def test_receipt_requires_idempotency_key(client, db_path):
    auth = open_session(client)
    read_pension(client, auth)
    r = client.post("/v1/receipts", json={"service": "pension_query", "created_at": NOW}, headers=auth)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"
    assert Database(db_path).count_receipts() == 0


def test_same_idempotency_key_gives_same_receipt_and_one_row(client, db_path):
    auth = open_session(client)
    read_pension(client, auth)
    key = "3f6c1b6e-8a4c-4f0e-9a52-1d2b3c4d5e6f"
    a, b = receipt(client, auth, key).json(), receipt(client, auth, key).json()
    assert a["receipt_id"] == b["receipt_id"] and a["verify_url"] == b["verify_url"]
    assert (a["replayed"], b["replayed"]) == (False, True)
    assert Database(db_path).count_receipts() == 1
    assert receipt(client, auth, key + "-2").json()["receipt_id"] != a["receipt_id"]
    assert Database(db_path).count_receipts() == 2


def test_reused_key_with_different_body_or_person_is_a_conflict(client, other, db_path):
    auth = open_session(client)
    read_pension(client, auth)
    key = "key-0000000001"
    assert receipt(client, auth, key).status_code == 200
    r = receipt(client, auth, key, created_at="2025-03-10T17:31:00+08:00")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    auth2 = open_session(other, WORKER)
    read_pension(other, auth2)
    assert receipt(other, auth2, key).status_code == 409  # someone else's key never replays their receipt
    assert Database(db_path).count_receipts() == 1


def test_created_at_must_be_aware_and_within_the_session(client, clock):
    """Every receipt or filing needs a live session: created_at lies between its opening and now, give or take
    5 minutes of clock drift (the session opened at 17:30 +08:00)."""
    auth = open_session(client)
    read_pension(client, auth)
    clock.t += 600  # ten minutes into the session: now 17:40
    for i, when in enumerate(
        (
            "2025-03-10T17:30:00",  # no time zone
            "2025-03-10T18:41:00+08:00",  # more than an hour ahead of now
            "2025-03-10T16:29:00+08:00",  # more than an hour before the session opened
            "2025-02-09T09:00:00+08:00",  # a month back: no session lives that long
            "9999-12-31T00:00:00Z",
        )
    ):
        r = receipt(client, auth, f"key-created-{i:04d}", created_at=when)
        assert r.status_code == 422 and r.json()["fields"] == [
            {"loc": ["body", "created_at"], "type": "created_at_out_of_range" if i else "timezone_aware"}
        ], when
    assert receipt(client, auth, "key-created-ok1", created_at="2025-03-10T18:39:00+08:00").status_code == 200
    assert receipt(client, auth, "key-created-ok2", created_at="2025-03-10T16:31:00+08:00").status_code == 200
    r = report(client, auth, "loss-created-old", created_at="2025-02-09T09:00:00+08:00")
    assert r.status_code == 422 and r.json()["fields"][0]["type"] == "created_at_out_of_range"


def _signed(client, key="key-verify-0001"):
    auth = open_session(client)
    read_pension(client, auth)
    r = receipt(client, auth, key)
    assert r.status_code == 200
    return r.json()


def test_verify_url_is_https_on_the_base_and_genuine(client):
    rec = _signed(client)
    url = rec["verify_url"]
    assert url.startswith(f"{BASE}/v1/receipts/" + rec["receipt_id"] + "/verify?sig=")
    v = client.get(_path(url)).json()
    assert v["genuine"] is True and v["reason"] == "ok"
    assert v["service"] == "pension_query" and v["title"] == "养老金查询"
    assert v["name_masked"] == "王*兰" and v["id_masked"] == "3701**********0527"
    assert v["site_id"] == "370102-001" and v["terminal_id"] == "T-0001"
    assert dt.datetime.fromisoformat(v["created_at"]) == dt.datetime.fromisoformat(NOW)
    assert dt.datetime.fromisoformat(v["received_at"]) == dt.datetime.fromisoformat(NOW)
    assert ELDER not in json.dumps(v) and "王秀兰" not in json.dumps(v, ensure_ascii=False)


def test_verification_shows_the_backends_time_not_the_terminals(client, clock):
    auth = open_session(client)
    read_pension(client, auth)
    clock.t += 240  # the backend records at 17:34; the terminal says 17:27 (3 minutes before the opening)
    rec = receipt(client, auth, "key-time-00001", created_at="2025-03-10T17:27:00+08:00").json()
    v = client.get(_path(rec["verify_url"])).json()
    assert dt.datetime.fromisoformat(v["received_at"]) == dt.datetime.fromisoformat("2025-03-10T17:34:00+08:00")
    assert dt.datetime.fromisoformat(v["created_at"]) == dt.datetime.fromisoformat("2025-03-10T17:27:00+08:00")
    page = client.get(_path(rec["verify_url"]), headers={"Accept": "text/html"}).text
    assert "2025-03-10 17:34" in page and "17:27" not in page


def test_forged_or_altered_verify_urls_are_not_genuine(client):
    a = _signed(client, "key-verify-000a")
    b = _signed(client, "key-verify-000b")
    sig_a = urlsplit(a["verify_url"]).query.removeprefix("sig=")
    sig_b = urlsplit(b["verify_url"]).query.removeprefix("sig=")
    flipped = ("A" if sig_a[0] != "A" else "B") + sig_a[1:]
    for path in (
        f"/v1/receipts/{a['receipt_id']}/verify?sig={flipped}",
        f"/v1/receipts/{a['receipt_id']}/verify?sig={sig_b}",
        f"/v1/receipts/{a['receipt_id']}/verify",
        f"/v1/receipts/{a['receipt_id'][:-1]}X/verify?sig={sig_a}",
    ):
        v = client.get(path).json()
        assert v["genuine"] is False and v["reason"] == "bad_signature", path
        assert v["name_masked"] is None and v["service"] is None


def test_verify_serves_html_to_a_phone(client):
    rec = _signed(client, "key-verify-html")
    r = client.get(_path(rec["verify_url"]), headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "回执真实有效" in r.text and "王*兰" in r.text and "3701**********0527" in r.text
    assert ELDER not in r.text and "王秀兰" not in r.text
    forged = client.get(f"/v1/receipts/{rec['receipt_id']}/verify?sig=AAAA", headers={"Accept": "text/html"})
    assert "无法验证" in forged.text and "王*兰" not in forged.text


def test_receipt_survives_a_restart(db_path, clock, certs):
    with _client(create_app(db_path, BASE, clock=clock, today=TODAY, demo=True), certs["t1"]) as c1:
        rec = _signed(c1, "key-restart-01")
    with _client(create_app(db_path, BASE, clock=clock, today=TODAY, demo=True), certs["t1"]) as c2:  # key from the file
        assert c2.get(_path(rec["verify_url"])).json()["genuine"] is True


# --- e-card sign-in --------------------------------------------------------------------------------------


def _code(client, key="elder", **params):
    r = client.get(f"/v1/demo/ecard-code/{key}", params=params)
    assert r.status_code == 200
    return r.json()["code"]


def test_ecard_session_is_the_person_of_the_code(client):
    code = _code(client, "young")
    assert code.startswith("ESSC1.")
    r = client.post("/v1/sessions", json={"credential": "ecard", "code": code})
    assert r.status_code == 201
    assert r.json()["person"] == {"name": "张小雨", "ssn": YOUNG} and r.json()["credential"] == "ecard"


def test_ecard_code_expires_and_can_be_revoked(client, clock):
    code, late = _code(client), _code(client)
    clock.t += 119
    assert client.post("/v1/sessions", json={"credential": "ecard", "code": code}).status_code == 201
    clock.t += 2
    r = client.post("/v1/sessions", json={"credential": "ecard", "code": late})
    assert r.status_code == 410 and r.json()["code"] == "ecard_expired"
    fresh = _code(client)
    assert client.post("/v1/demo/ecard-revoke", json={"code": fresh}).json() == {"revoked": True}
    r = client.post("/v1/sessions", json={"credential": "ecard", "code": fresh})
    assert r.status_code == 410 and r.json()["code"] == "ecard_revoked"


def test_ecard_code_opens_one_session_only(client, other, db_path):
    """A photographed or replayed QR code is worth nothing once used: not from this terminal, not from another."""
    code = _code(client)
    assert client.post("/v1/sessions", json={"credential": "ecard", "code": code}).status_code == 201
    for c in (client, other):
        r = c.post("/v1/sessions", json={"credential": "ecard", "code": code})
        assert r.status_code == 410 and r.json()["code"] == "ecard_revoked"
        assert "用过" in r.json()["message"]
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions WHERE credential = 'ecard'").fetchone()[0] == 1
    assert client.post("/v1/sessions", json={"credential": "ecard", "code": _code(client)}).status_code == 201


def test_used_codes_are_forgotten_once_expired(client, clock, db_path):
    code = _code(client)
    assert client.post("/v1/sessions", json={"credential": "ecard", "code": code}).status_code == 201
    clock.t += 121 + 60
    open_session(client)  # an opening sweeps
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ecard_used").fetchone()[0] == 0
    r = client.post("/v1/sessions", json={"credential": "ecard", "code": code})
    assert r.status_code == 410 and r.json()["code"] == "ecard_expired"


def test_ecard_code_racing_terminals_get_one_session(db_path, clock, certs):
    """The code is marked used in the transaction that opens the session: two openings that both passed the
    early check still end with one session."""
    app = create_app(db_path, BASE, clock=clock, today=TODAY, demo=True)
    code = _code(_client(app, certs["t1"]))
    nonce, _, _ = _parse_ecard(_ecard_secret(db_path), code)
    assert nonce is not None
    db = app.state.db
    kw = dict(terminal_id="T-0001", site_id="370102-001", cert_fingerprint="f", credential="ecard", ssn=ELDER,
              name="", opened_at=clock.t, expires_at=clock.t + 900, at=NOW, ecard_nonce=nonce,
              ecard_expires=clock.t + 120)
    db.open_session(token_hash="a" * 64, **kw)
    with pytest.raises(ECardUsed):
        db.open_session(token_hash="b" * 64, **kw)
    assert db.session("b" * 64) is None


def _ecard_secret(db_path) -> bytes:
    return bytes.fromhex((db_path.parent / "keys" / "ecard_hmac.key").read_text().strip())


def test_tampered_ecard_code_is_unknown(client, clock):
    code = _code(client)
    prefix, body, sig = code.split(".")
    worker_body = _code(client, "worker").split(".")[1]
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    for bad in (f"{prefix}.{worker_body}.{sig}", f"{prefix}.{body}.{flipped}", "ESSC2" + code[5:], "hello"):
        clock.t += 3  # one opening per 3 s: stay under the rate limit
        r = client.post("/v1/sessions", json={"credential": "ecard", "code": bad})
        assert r.status_code == 404 and r.json()["code"] == "ecard_unknown", bad


def test_without_demo_there_are_no_demo_people(db_path, clock, certs):
    with _client(create_app(db_path, BASE, clock=clock, today=TODAY), certs["t1"]) as c:
        r = c.post("/v1/sessions", json={"credential": "id_card", "ssn": ELDER})
        assert r.json()["person"] == {"name": "", "ssn": ELDER}
        assert read_pension(c, {"Authorization": f"Bearer {r.json()['token']}"}).status_code == 404
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM persons").fetchone()[0] == 0
    create_app(db_path, BASE, clock=clock, today=TODAY, seed_demo_people=True)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM persons").fetchone()[0] > 0


def test_demo_routes_only_in_demo(db_path, clock, certs):
    with _client(create_app(db_path, BASE, clock=clock, today=TODAY), certs["t1"]) as c:
        assert c.get("/v1/demo/ecard-code/elder").status_code == 404
        assert c.post("/v1/demo/ecard-revoke", json={"code": "x"}).status_code == 404


def test_unknown_persona_code(client):
    r = client.get("/v1/demo/ecard-code/nobody")
    assert r.status_code == 404 and r.json()["code"] == "unknown_persona"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=300), st.from_regex(r"ESSC1\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,30}")))
def test_ecard_parser_never_crashes(code):
    nonce, key, exp = _parse_ecard(b"k" * 32, code)
    assert (nonce, key, exp) == (None, None, 0.0)  # without the secret nothing is genuine


# --- bodies the app never has to parse ------------------------------------------------------------------


_VALID = b'"credential": "id_card", "ssn": "370102195203140527"'


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        # Each bad thing sits in an otherwise valid body, so only the guard can name it (without the guard the
        # body would open a session, or fail validation with another type).
        (b'{' + _VALID + b', "name": "a\\ud800"}', "string_lone_surrogate"),
        (b'{' + _VALID + b', "name": "a\\u0000b"}', "string_nul"),
        (b'{' + _VALID + b', "\\udfff": 1}', "string_lone_surrogate"),
        (b'{' + _VALID + b', "name": "\xff\xfe"}', "json_not_utf8"),
        (b'{' + _VALID + b', "name": ' + b"[" * 40 + b"]" * 40 + b"}", "json_too_deep"),
        (b"[" * 1000 + b"]" * 1000, "json_too_deep"),
        (b'{"a":' * 33 + b"1" + b"}" * 33, "json_too_deep"),
        (b"{not json", "json_invalid"),
    ],
)
def test_odd_bodies_are_422_never_500(client, db_path, raw, problem):
    r = client.post("/v1/sessions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert r.json()["fields"] == [{"loc": ["body"], "type": problem}]
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0


def test_odd_bodies_on_personal_endpoints_are_refused_by_the_guard(client):
    auth = open_session(client)
    read_pension(client, auth)
    for path, raw in (
        ("/v1/receipts", b'{"service": "pension_query", "created_at": "2025-03-10T17:30:00+08:00\\u0000"}'),
        ("/v1/filings/card-loss", b'{"created_at": "2025-03-10T17:30:00+08:00", "\\ud800": 1}'),
    ):
        r = client.post(path, content=raw, headers={**auth, "Idempotency-Key": "key-odd-00001",
                                                     "Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["fields"][0]["type"] in ("string_nul", "string_lone_surrogate")


def test_nesting_up_to_the_limit_reaches_validation(client):
    raw = b'{"credential": "id_card", "ssn": "370102195203140527", "x":' + b"[" * 30 + b"]" * 30 + b"}"
    r = client.post("/v1/sessions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["fields"][0]["type"] == "extra_forbidden"


def test_body_over_64_kib_is_413(client):
    big = json.dumps({"credential": "id_card", "ssn": ELDER, "name": "x" * (64 * 1024)})
    r = client.post("/v1/sessions", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"

    def chunks():  # no Content-Length: counted while reading
        for _ in range(70):
            yield b"x" * 1024

    r = client.post("/v1/sessions", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


# --- fault modes (without a socket; the TLS server's modes are in tests/e2e) ------------------------------


def test_error_mode_answers_500_with_code_and_counts(client, control):
    control.set_mode("error")
    r = client.get("/v1/health")
    assert r.status_code == 500 and r.json()["code"] == "server_error"
    control.set_mode("online")
    assert client.get("/v1/health").status_code == 200
    assert control.request_count("/v1/health") == 2


def test_fail_after_processing_keeps_the_row(client, control, db_path):
    auth = open_session(client)
    read_pension(client, auth)
    control.fail_next(1, after_processing=True)
    key = "key-lost-answer-1"
    assert receipt(client, auth, key).status_code == 500
    assert Database(db_path).count_receipts(key) == 1
    again = receipt(client, auth, key)
    assert again.status_code == 200 and again.json()["replayed"] is True


def test_set_mode_rejects_unknown_modes(control):
    with pytest.raises(ValueError):
        control.set_mode("sideways")


# --- filing: 社保卡临时挂失 (temporary loss report) --------------------------------------------------------


def _card_status(db_path, ssn):
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT status, filing_id FROM card_status WHERE ssn = ?", (ssn,)).fetchone()
    finally:
        conn.close()


def test_card_loss_happy_path_suspends_the_card(client, db_path):
    assert _card_status(db_path, ELDER) is None
    auth = open_session(client)
    r = report(client, auth)
    assert r.status_code == 200
    f = parse(CardLossFiling, r.content).model_dump(mode="json")
    assert f["status"] == "accepted" and f["card_status"] == "temporarily_suspended" and f["replayed"] is False
    assert f["filing_id"].startswith("F20250310-") and f["receipt_id"].startswith("R20250310-")
    assert dt.datetime.fromisoformat(f["received_at"]) == dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC)
    assert f["lines"] == [["挂失状态", "已临时挂失"], ["说明", "临时挂失有效期 5 个工作日，请尽快到窗口办理正式挂失和补卡"]]
    assert _card_status(db_path, ELDER) == ("temporarily_suspended", f["filing_id"])
    db = Database(db_path)
    assert db.count_filings(ELDER) == 1 and db.count_receipts() == 1
    assert ELDER not in r.text and "王秀兰" not in r.text
    s = client.get(f"/v1/filings/{f['filing_id']}", headers=auth)
    assert s.status_code == 200
    # The status row is a FilingSummary (我的办件): a card loss is a direct filing, done at once.
    assert s.json() == {
        "filing_id": f["filing_id"], "local_number": None, "service": "card_loss", "title": "社保卡临时挂失",
        "status": "done", "handling": "direct", "reason": None, "due_date": "2025-03-10",
        "created_at": r.json()["created_at"], "updated_at": r.json()["received_at"],
    }


@pytest.mark.parametrize("credential", ["sscard_pin", "id_card"])
def test_card_loss_after_any_sign_in_records_that_credential(client, db_path, credential):
    auth = open_session(client, credential=credential)
    f = report(client, auth).json()
    assert f["status"] == "accepted"
    assert Database(db_path).filing(f["filing_id"]).credential == credential


def test_card_loss_after_ecard_sign_in(client, db_path):
    r = client.post("/v1/sessions", json={"credential": "ecard", "code": _code(client, "worker")})
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    f = report(client, auth).json()
    filing = Database(db_path).filing(f["filing_id"])
    assert filing.credential == "ecard" and filing.ssn == WORKER


def test_card_loss_body_cannot_name_a_person_or_terminal(client, db_path):
    auth = open_session(client)
    for extra in ({"ssn": WORKER}, {"terminal_id": "T-9"}, {"site_id": "x"}, {"credential": "ecard"}, {"name": "x"}):
        r = report(client, auth, **extra)
        assert r.status_code == 422, extra
    assert Database(db_path).count_filings() == 0


def test_card_loss_receipt_verifies_as_card_loss(client, db_path):
    auth = open_session(client, credential="sscard_pin")
    f = report(client, auth, "loss-key-verify").json()
    v = client.get(_path(f["verify_url"])).json()
    assert v["genuine"] is True and v["receipt_id"] == f["receipt_id"]
    assert v["service"] == "card_loss" and v["title"] == "社保卡临时挂失"
    assert v["name_masked"] == "王*兰" and v["site_id"] == "370102-001" and v["terminal_id"] == "T-0001"


def test_card_loss_replay_conflict_and_already_reported(client, other, db_path):
    auth = open_session(client)
    first = report(client, auth, "loss-key-replay").json()
    second = report(client, auth, "loss-key-replay").json()
    assert second["replayed"] is True and second["filing_id"] == first["filing_id"]
    r = report(client, auth, "loss-key-replay", created_at="2025-03-10T17:31:00+08:00")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    again = report(client, auth, "loss-key-again").json()
    assert again["status"] == "already_reported" and again["filing_id"] == first["filing_id"]
    w = report(other, open_session(other, WORKER), "loss-key-worker").json()
    assert w["status"] == "accepted" and w["filing_id"] != first["filing_id"]
    assert Database(db_path).count_filings() == 2


def test_card_loss_for_a_person_without_a_card_is_404(client, db_path):
    r = report(client, open_session(client, NOT_A_CARD_HOLDER))
    assert r.status_code == 404 and r.json()["code"] == "no_card"
    assert Database(db_path).count_filings() == 0 and Database(db_path).count_receipts() == 0


def test_card_loss_requires_idempotency_key(client, db_path):
    auth = open_session(client)
    r = client.post("/v1/filings/card-loss", json={"created_at": NOW}, headers=auth)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"
    assert report(client, auth, "short").status_code == 400
    assert Database(db_path).count_filings() == 0


def test_filings_of_another_person_are_unknown(client, db_path):
    f = report(client, open_session(client)).json()
    auth = open_session(client, WORKER)
    r = client.get(f"/v1/filings/{f['filing_id']}", headers=auth)
    assert r.status_code == 404 and r.json()["code"] == "unknown_filing"
    assert client.get("/v1/filings/bad%20id", headers=auth).status_code == 422


def test_card_loss_lost_answer_leaves_one_filing(client, control, db_path):
    auth = open_session(client)
    control.fail_next(1, after_processing=True)
    assert report(client, auth, "loss-key-lost").status_code == 500
    assert Database(db_path).count_filings(ELDER) == 1
    again = report(client, auth, "loss-key-lost").json()
    assert again["status"] == "accepted" and again["replayed"] is True


# --- audit -----------------------------------------------------------------------------------------------


def test_audit_lists_every_access_newest_first(client, other, clock):
    auth = open_session(client, credential="sscard_pin")
    clock.t += 1
    read_pension(client, auth)
    clock.t += 1
    receipt(client, auth)
    clock.t += 1
    report(client, auth)
    clock.t += 1
    open_session(other, WORKER)  # someone else: not in this person's log
    log = parse(AuditLog, client.get("/v1/audit", headers=auth).content)
    assert [e.action for e in log.entries] == ["card_loss_filed", "receipt_issued", "pension_read", "session_opened"]
    assert {(e.terminal_id, e.site_id, e.credential) for e in log.entries} == {("T-0001", "370102-001", "sscard_pin")}
    times = [e.time for e in log.entries]
    assert times == sorted(times, reverse=True)
    later = client.get("/v1/audit", headers=auth).json()["entries"]
    assert later[0]["action"] == "audit_read"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode())))
def test_no_body_makes_a_500(client, raw):
    for path in ("/v1/sessions", "/v1/receipts", "/v1/filings/card-loss", "/v1/pension"):
        r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (path, raw)
