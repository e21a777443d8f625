"""The reference backend's API through FastAPI's TestClient on a real temporary SQLite file."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import warnings
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.app import ServerControl, _parse_ecard, create_app
from backend.db import PERSONAS_PATH, Database

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2 is not ours to fix
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(60)

ELDER = "370102195203140527"  # receiving, 238.50 a month
WORKER = "41132219780901441X"  # contributing, not receiving
YOUNG = "110105200306150829"  # no pension record
TODAY = dt.date(2025, 3, 10)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "backend.sqlite3"


@pytest.fixture
def control() -> ServerControl:
    return ServerControl()


@pytest.fixture
def client(db_path, clock, control):
    app = create_app(db_path, "https://kiosk-api.example", clock=clock, today=TODAY, control=control)
    with TestClient(app, base_url="https://kiosk-api.example") as c:
        yield c


def receipt_body(**over):
    body = {
        "terminal_id": "T-0001",
        "site_id": "370102-001",
        "service": "pension_query",
        "ssn": ELDER,
        "summary": {"title": "养老金查询", "months": 12},
        "created_at": "2025-03-10T17:30:00+08:00",
    }
    body.update(over)
    return body


# --- health, seeding ------------------------------------------------------------------------------


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


# --- pension -------------------------------------------------------------------------------------------


def test_pension_of_a_receiving_elder(client):
    r = client.get(f"/v1/pension/{ELDER}")
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


def test_pension_of_a_contributor_has_no_payments(client):
    p = client.get(f"/v1/pension/{WORKER}").json()
    assert p["receiving"] is False and p["monthly_amount"] is None and p["payments"] == []
    assert p["certification_due"] is None


def test_lowercase_x_is_accepted(client):
    assert client.get(f"/v1/pension/{WORKER.lower()}").status_code == 200


def test_no_record_is_404_with_stable_code(client):
    r = client.get(f"/v1/pension/{YOUNG}")
    assert r.status_code == 404
    assert r.json()["code"] == "no_record"


def test_invalid_id_number_is_rejected(client):
    bad = ELDER[:-1] + "1"  # wrong check digit
    r = client.get(f"/v1/pension/{bad}")
    assert r.status_code == 400 and r.json()["code"] == "invalid_ssn"
    r = client.get("/v1/pension/123")
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert "123" not in json.dumps(r.json()["fields"])  # input is not echoed back


def test_unknown_route_has_code(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


# --- receipts ------------------------------------------------------------------------------------------


def test_receipt_requires_idempotency_key(client, db_path):
    r = client.post("/v1/receipts", json=receipt_body())
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"
    assert Database(db_path).count_receipts() == 0


def test_same_idempotency_key_gives_same_receipt_and_one_row(client, db_path):
    key = "3f6c1b6e-8a4c-4f0e-9a52-1d2b3c4d5e6f"
    first = client.post("/v1/receipts", json=receipt_body(), headers={"Idempotency-Key": key})
    second = client.post("/v1/receipts", json=receipt_body(), headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 200
    a, b = first.json(), second.json()
    assert a["receipt_id"] == b["receipt_id"] and a["verify_url"] == b["verify_url"]
    assert (a["replayed"], b["replayed"]) == (False, True)
    assert Database(db_path).count_receipts() == 1
    other = client.post("/v1/receipts", json=receipt_body(), headers={"Idempotency-Key": key + "-2"})
    assert other.json()["receipt_id"] != a["receipt_id"]
    assert Database(db_path).count_receipts() == 2


def test_reused_key_with_different_body_is_a_conflict(client, db_path):
    key = "key-0000000001"
    client.post("/v1/receipts", json=receipt_body(), headers={"Idempotency-Key": key})
    r = client.post("/v1/receipts", json=receipt_body(service="unemployment_reg"), headers={"Idempotency-Key": key})
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert Database(db_path).count_receipts() == 1


def test_receipt_validation_does_not_echo_the_id_number(client):
    body = receipt_body(ssn="37010219520314052")  # 17 characters
    r = client.post("/v1/receipts", json=body, headers={"Idempotency-Key": "key-0000000002"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert "37010219520314052" not in r.text


def test_naive_created_at_is_rejected(client):
    r = client.post(
        "/v1/receipts", json=receipt_body(created_at="2025-03-10T17:30:00"), headers={"Idempotency-Key": "key-00000003"}
    )
    assert r.status_code == 422


def _create(client, key="key-verify-0001", **over):
    r = client.post("/v1/receipts", json=receipt_body(**over), headers={"Idempotency-Key": key})
    assert r.status_code == 200
    return r.json()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_verify_url_is_https_on_the_server_and_genuine(client):
    rec = _create(client)
    url = rec["verify_url"]
    assert url.startswith("https://kiosk-api.example/v1/receipts/" + rec["receipt_id"] + "/verify?sig=")
    v = client.get(_path(url)).json()
    assert v["genuine"] is True and v["reason"] == "ok"
    assert v["service"] == "pension_query" and v["title"] == "养老金查询"
    assert v["name_masked"] == "王*兰" and v["id_masked"] == "3701**********0527"
    assert v["site_id"] == "370102-001" and v["terminal_id"] == "T-0001"
    assert dt.datetime.fromisoformat(v["created_at"]) == dt.datetime.fromisoformat("2025-03-10T17:30:00+08:00")
    assert ELDER not in json.dumps(v) and "王秀兰" not in json.dumps(v, ensure_ascii=False)


def test_forged_or_altered_verify_urls_are_not_genuine(client):
    a = _create(client, key="key-verify-000a")
    b = _create(client, key="key-verify-000b")
    sig_a = urlsplit(a["verify_url"]).query.removeprefix("sig=")
    sig_b = urlsplit(b["verify_url"]).query.removeprefix("sig=")
    flipped = ("A" if sig_a[0] != "A" else "B") + sig_a[1:]
    cases = [
        f"/v1/receipts/{a['receipt_id']}/verify?sig={flipped}",  # altered signature
        f"/v1/receipts/{a['receipt_id']}/verify?sig={sig_b}",  # another receipt's signature
        f"/v1/receipts/{a['receipt_id']}/verify",  # no signature
        f"/v1/receipts/{a['receipt_id'][:-1]}X/verify?sig={sig_a}",  # altered id
    ]
    for path in cases:
        v = client.get(path).json()
        assert v["genuine"] is False and v["reason"] == "bad_signature", path
        assert v["name_masked"] is None and v["service"] is None  # a forged URL learns nothing


def test_verify_serves_html_to_a_phone(client):
    rec = _create(client, key="key-verify-html")
    r = client.get(_path(rec["verify_url"]), headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "回执真实有效" in r.text and "王*兰" in r.text and "3701**********0527" in r.text
    assert ELDER not in r.text and "王秀兰" not in r.text
    forged = client.get(f"/v1/receipts/{rec['receipt_id']}/verify?sig=AAAA", headers={"Accept": "text/html"})
    assert "无法验证" in forged.text and "王*兰" not in forged.text


def test_receipt_survives_a_restart(db_path, clock):
    app1 = create_app(db_path, "https://kiosk-api.example", clock=clock, today=TODAY)
    with TestClient(app1, base_url="https://kiosk-api.example") as c1:
        rec = _create(c1, key="key-restart-01")
    app2 = create_app(db_path, "https://kiosk-api.example", clock=clock, today=TODAY)  # same secret from the DB
    with TestClient(app2, base_url="https://kiosk-api.example") as c2:
        assert c2.get(_path(rec["verify_url"])).json()["genuine"] is True


# --- electronic social-security card ---------------------------------------------------------------------


def _ecard(client, key="elder"):
    r = client.get(f"/v1/demo/ecard-code/{key}")
    assert r.status_code == 200
    return r.json()


def test_ecard_code_resolves_to_the_person(client):
    code = _ecard(client, "young")  # people without a pension record have e-cards too
    assert code["code"].startswith("ESSC1.") and code["ttl_seconds"] == 120
    r = client.post("/v1/ecard/resolve", json={"code": code["code"]})
    assert r.status_code == 200
    assert r.json() == {"name": "张小雨", "ssn": YOUNG}


def test_ecard_code_expires(client, clock):
    code = _ecard(client)["code"]
    clock.t += 119
    assert client.post("/v1/ecard/resolve", json={"code": code}).status_code == 200
    clock.t += 2
    r = client.post("/v1/ecard/resolve", json={"code": code})
    assert r.status_code == 410 and r.json()["code"] == "ecard_expired"


def test_ecard_code_revoked(client):
    code = _ecard(client)["code"]
    other = _ecard(client)["code"]
    assert client.post("/v1/demo/ecard-revoke", json={"code": code}).json() == {"revoked": True}
    r = client.post("/v1/ecard/resolve", json={"code": code})
    assert r.status_code == 410 and r.json()["code"] == "ecard_revoked"
    assert client.post("/v1/ecard/resolve", json={"code": other}).status_code == 200  # only that code


def test_tampered_ecard_code_is_unknown(client):
    code = _ecard(client)["code"]
    prefix, body, sig = code.split(".")
    worker_body = _ecard(client, "worker")["code"].split(".")[1]
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    for bad in (f"{prefix}.{worker_body}.{sig}", f"{prefix}.{body}.{flipped}", "ESSC2" + code[5:], "hello"):
        r = client.post("/v1/ecard/resolve", json={"code": bad})
        assert r.status_code == 404 and r.json()["code"] == "ecard_unknown", bad


def test_demo_routes_can_be_switched_off(db_path, clock):
    app = create_app(db_path, "https://kiosk-api.example", clock=clock, today=TODAY, demo=False)
    with TestClient(app) as c:
        assert c.get("/v1/demo/ecard-code/elder").status_code == 404
        assert c.get(f"/v1/pension/{ELDER}").status_code == 200


def test_unknown_persona_code(client):
    r = client.get("/v1/demo/ecard-code/nobody")
    assert r.status_code == 404 and r.json()["code"] == "unknown_persona"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=300), st.from_regex(r"ESSC1\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,30}")))
def test_ecard_parser_never_crashes(code):
    nonce, key, exp = _parse_ecard(b"k" * 32, code)
    assert (nonce, key, exp) == (None, None, 0.0)  # without the secret nothing is genuine


# --- fault modes (without a socket; the TLS server's modes are in tests/e2e) ------------------------------


def test_error_mode_answers_500_with_code_and_counts(client, control):
    control.set_mode("error")
    r = client.get("/v1/health")
    assert r.status_code == 500 and r.json()["code"] == "server_error"
    control.set_mode("online")
    assert client.get("/v1/health").status_code == 200
    assert control.request_count("/v1/health") == 2


def test_fail_after_processing_keeps_the_row(client, control, db_path):
    control.fail_next(1, after_processing=True)
    key = "key-lost-answer-1"
    lost = client.post("/v1/receipts", json=receipt_body(), headers={"Idempotency-Key": key})
    assert lost.status_code == 500
    assert Database(db_path).count_receipts(key) == 1
    again = client.post("/v1/receipts", json=receipt_body(), headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["replayed"] is True


def test_set_mode_rejects_unknown_modes(control):
    with pytest.raises(ValueError):
        control.set_mode("sideways")


# --- filing: 社保卡临时挂失 (temporary loss report) --------------------------------------------------------

NOT_A_CARD_HOLDER = "522732198811230424"  # valid check digit; has an ID card (idcards.json) but no SSC


def loss_body(**over):
    body = {
        "terminal_id": "T-0001",
        "site_id": "370102-001",
        "ssn": ELDER,
        "name": "王秀兰",
        "credential": "id_card",
        "created_at": "2025-03-10T17:30:00+08:00",
    }
    body.update(over)
    return body


def _report(client, key, **over):
    return client.post("/v1/filings/card-loss", json=loss_body(**over), headers={"Idempotency-Key": key})


def _card_status(db_path, ssn):
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT status, filing_id FROM card_status WHERE ssn = ?", (ssn,)).fetchone()
    finally:
        conn.close()


def test_card_loss_happy_path_suspends_the_card(client, db_path):
    assert _card_status(db_path, ELDER) is None
    r = _report(client, "loss-key-0001")
    assert r.status_code == 200
    f = r.json()
    assert f["status"] == "accepted" and f["card_status"] == "temporarily_suspended" and f["replayed"] is False
    assert f["filing_id"].startswith("F20250310-") and f["receipt_id"].startswith("R20250310-")
    assert dt.datetime.fromisoformat(f["created_at"]) == dt.datetime.fromisoformat("2025-03-10T17:30:00+08:00")
    assert dt.datetime.fromisoformat(f["received_at"]) == dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC)
    assert f["lines"] == [["挂失状态", "已临时挂失"], ["说明", "临时挂失有效期 5 个工作日，请尽快到窗口办理正式挂失和补卡"]]
    assert _card_status(db_path, ELDER) == ("temporarily_suspended", f["filing_id"])
    db = Database(db_path)
    assert db.count_filings(ELDER) == 1 and db.count_receipts() == 1
    assert ELDER not in r.text and "王秀兰" not in r.text

    s = client.get(f"/v1/filings/{f['filing_id']}")
    assert s.status_code == 200
    assert s.json() == {"filing_id": f["filing_id"], "type": "card_loss", "status": "accepted",
                        "created_at": f["created_at"]}


def test_card_loss_receipt_verifies_as_card_loss(client, db_path):
    f = _report(client, "loss-key-verify", credential="sscard_pin").json()
    assert f["verify_url"].startswith(f"https://kiosk-api.example/v1/receipts/{f['receipt_id']}/verify?sig=")
    v = client.get(_path(f["verify_url"])).json()
    assert v["genuine"] is True and v["receipt_id"] == f["receipt_id"]
    assert v["service"] == "card_loss" and v["title"] == "社保卡临时挂失"
    assert v["name_masked"] == "王*兰" and v["id_masked"] == "3701**********0527"
    assert v["site_id"] == "370102-001" and v["terminal_id"] == "T-0001"
    row = Database(db_path).receipt(f["receipt_id"])
    assert row is not None and row.summary == {
        "title": "社保卡临时挂失",
        "挂失状态": "已临时挂失",
        "说明": "临时挂失有效期 5 个工作日，请尽快到窗口办理正式挂失和补卡",
    }


def test_card_loss_same_key_is_replayed_without_a_second_row(client, db_path):
    first = _report(client, "loss-key-replay").json()
    second = _report(client, "loss-key-replay").json()
    assert second["replayed"] is True and second["status"] == "accepted"
    for k in ("filing_id", "receipt_id", "verify_url", "created_at", "received_at"):
        assert first[k] == second[k], k
    db = Database(db_path)
    assert db.count_filings() == 1 and db.count_receipts() == 1


def test_card_loss_same_key_different_body_is_a_conflict(client, db_path):
    assert _report(client, "loss-key-conflict").status_code == 200
    r = _report(client, "loss-key-conflict", credential="ecard")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    r = _report(client, "loss-key-conflict", ssn=WORKER, name=None)  # another person's card, same key
    assert r.status_code == 409
    assert Database(db_path).count_filings() == 1 and _card_status(db_path, WORKER) is None


def test_second_report_of_a_suspended_card_is_already_reported(client, db_path):
    first = _report(client, "loss-key-first").json()
    again = _report(client, "loss-key-again", credential="ecard", created_at="2025-03-11T08:00:00+08:00")
    assert again.status_code == 200
    a = again.json()
    assert a["status"] == "already_reported" and a["card_status"] == "temporarily_suspended"
    assert a["replayed"] is False
    assert (a["filing_id"], a["receipt_id"], a["created_at"]) == (first["filing_id"], first["receipt_id"],
                                                                 first["created_at"])
    replay = _report(client, "loss-key-again", credential="ecard", created_at="2025-03-11T08:00:00+08:00").json()
    assert replay["status"] == "already_reported" and replay["replayed"] is True
    db = Database(db_path)
    assert db.count_filings() == 1 and db.count_receipts() == 1
    # Another person's card is still its own filing.
    w = _report(client, "loss-key-worker", ssn=WORKER, name="李建国").json()
    assert w["status"] == "accepted" and w["filing_id"] != first["filing_id"]
    assert db.count_filings() == 2


def test_card_loss_bad_id_number_is_422_without_echo(client, db_path):
    bad = ELDER[:-1] + ("8" if ELDER[-1] != "8" else "9")  # wrong check digit
    r = _report(client, "loss-key-badssn", ssn=bad)
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert {"loc": ["body", "ssn"], "type": "invalid_ssn"} in r.json()["fields"]
    assert bad not in r.text
    assert _report(client, "loss-key-short", ssn=ELDER[:17]).status_code == 422
    assert _report(client, "loss-key-cred", credential="password").status_code == 422
    assert Database(db_path).count_filings() == 0


def test_card_loss_lowercase_x_is_the_same_card(client):
    r = _report(client, "loss-key-lower-x", ssn=WORKER.lower(), name="李建国")
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    again = _report(client, "loss-key-upper-x", ssn=WORKER, name="李建国")
    assert again.json()["status"] == "already_reported"


def test_card_loss_for_a_person_without_a_card_is_404(client, db_path):
    r = _report(client, "loss-key-nocard", ssn=NOT_A_CARD_HOLDER, name="韦阿妹")
    assert r.status_code == 404 and r.json()["code"] == "no_card"
    assert Database(db_path).count_filings() == 0 and Database(db_path).count_receipts() == 0


def test_card_loss_requires_idempotency_key(client, db_path):
    assert client.post("/v1/filings/card-loss", json=loss_body()).json()["code"] == "idempotency_key_required"
    r = client.post("/v1/filings/card-loss", json=loss_body(), headers={"Idempotency-Key": "short"})
    assert r.status_code == 400
    assert Database(db_path).count_filings() == 0


def test_card_loss_key_space_is_separate_from_receipts(client, db_path):
    key = "shared-key-0001"
    assert client.post("/v1/receipts", json=receipt_body(), headers={"Idempotency-Key": key}).status_code == 200
    r = _report(client, key)
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert Database(db_path).count_receipts() == 2


def test_unknown_filing_is_404(client):
    r = client.get("/v1/filings/F20250310-0000000000")
    assert r.status_code == 404 and r.json()["code"] == "unknown_filing"
    assert client.get("/v1/filings/bad%20id").status_code == 422


def test_card_loss_survives_a_restart(db_path, clock):
    app1 = create_app(db_path, "https://kiosk-api.example", clock=clock, today=TODAY)
    with TestClient(app1, base_url="https://kiosk-api.example") as c1:
        f = _report(c1, "loss-key-restart").json()
    app2 = create_app(db_path, "https://kiosk-api.example", clock=clock, today=TODAY)
    with TestClient(app2, base_url="https://kiosk-api.example") as c2:
        assert c2.get(f"/v1/filings/{f['filing_id']}").json()["status"] == "accepted"
        assert _report(c2, "loss-key-restart").json()["replayed"] is True
        assert _report(c2, "loss-key-restart2").json()["status"] == "already_reported"


def test_card_loss_lost_answer_leaves_one_filing(client, control, db_path):
    control.fail_next(1, after_processing=True)
    assert _report(client, "loss-key-lost").status_code == 500
    assert Database(db_path).count_filings(ELDER) == 1
    again = _report(client, "loss-key-lost").json()
    assert again["status"] == "accepted" and again["replayed"] is True
    assert Database(db_path).count_filings(ELDER) == 1
