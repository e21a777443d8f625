"""Filings on the reference backend (docs/filings.md): the catalog, attachments, POST /v1/filings with schema
validation, idempotency and local-number dedup, 我的办件, ratings and the township worklist, in process
(FastAPI's TestClient on a real temporary SQLite file; the certificate is presented as the mTLS listener does).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import random
import re
import sqlite3
import stat
import sys
import warnings
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from PIL import Image

from api.models import AttachmentStored, Filing, FilingList, FilingSummary, RatingSummary, ServiceInfo, parse
from api.workdays import add_working_days
from backend.app import create_app
from backend.catalog import WIDGETS, CatalogError, compile_service, load_catalog
from backend.db import Database
from backend.identity import with_cert_pem
from backend.worklist import check_clerk_password, set_clerk_password

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)

ELDER = {"ssn": "370102195203140527", "name": "王秀兰"}
WORKER = {"ssn": "41132219780901441X", "name": "李建国"}
STRANGER = {"ssn": "522732198811230424", "name": "<b>吴</b>"}  # valid check digit, no record on file
NOW = "2025-03-10T17:30:00+08:00"
TODAY = dt.date(2025, 3, 10)
BASE = "https://kiosk-api.example"
WORKLIST = "https://worklist.example"
PASSWORD = "township-clerk-1"
CATALOG = load_catalog()


@pytest.fixture
def app(db_path, clock):
    return create_app(db_path, BASE, clock=clock, today=TODAY, seed_demo_people=True, session_burst=1000)


@pytest.fixture
def client(app, certs):
    with TestClient(with_cert_pem(app, certs["t1"]), base_url=BASE) as c:
        yield c


@pytest.fixture
def other(app, certs):
    with TestClient(with_cert_pem(app, certs["t2"]), base_url=BASE) as c:
        yield c


@pytest.fixture
def bare(app):
    """No certificate at all."""
    with TestClient(app, base_url=BASE) as c:
        yield c


# --- helpers --------------------------------------------------------------------------------------------------


def jpeg(seed: int = 0, size: tuple[int, int] = (64, 48), quality: int = 80) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(seed: int = 0, size: tuple[int, int] = (64, 32)) -> bytes:
    img = Image.new("L", size, seed % 256)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(client, data: bytes, media: str = "image/jpeg", digest: str | None = None):
    return client.put(f"/v1/attachments/{digest or sha(data)}", content=data, headers={"Content-Type": media})


_local_seq = iter(range(1, 10**6))


def local_number() -> str:
    return f"L20250310-{next(_local_seq):06d}"


def answers_for(client, service_key: str, person: dict, seed: int = 0) -> dict:
    """Valid answers to a shipped form (attachments uploaded on the way)."""
    form = CATALOG.get(service_key).info.form
    out: dict = {}
    for field in form["x-order"]:
        prop = form["properties"][field]
        widget = prop["x-widget"]
        if widget == "prefill":
            out[field] = person["name"] if prop["x-prefill"] == "name" else person["ssn"]
        elif widget in ("choice", "pick"):
            out[field] = prop["oneOf"][seed % len(prop["oneOf"])]["const"]
        elif widget == "yesno":
            out[field] = bool(seed % 2)
        elif widget == "date":
            out[field] = "2025-03-01"
        elif widget == "keypad":
            out[field] = "13800138000" if prop.get("type") == "string" else prop["minimum"]
        elif widget in ("document", "face"):
            data = jpeg(seed * 100 + len(out))
            assert put(client, data).status_code in (200, 201)
            out[field] = sha(data)
        elif widget == "signature":
            data = png(seed)
            assert put(client, data, "image/png").status_code in (200, 201)
            out[field] = sha(data)
    return out


def body(service: str, answers: dict, person: dict = ELDER, credential: str = "sscard_pin", **over) -> dict:
    return {
        "service": service,
        "local_number": over.pop("local_number", None) or local_number(),
        "person": {**person, "credential": credential},
        "answers": answers,
        "created_at": NOW,
        **over,
    }


def file(client, b: dict, key: str = "filing-key-0001", auth: dict | None = None):
    return client.post("/v1/filings", json=b, headers={**(auth or {}), "Idempotency-Key": key})


def open_session(client, ssn: str = ELDER["ssn"], credential: str = "sscard_pin") -> dict:
    r = client.post("/v1/sessions", json={"credential": credential, "ssn": ssn})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def problem_fields(r) -> list[tuple[tuple[str, ...], str]]:
    return [(tuple(p["loc"]), p["type"]) for p in r.json()["fields"]]


# --- the catalog ------------------------------------------------------------------------------------------------


def test_catalog_ships_every_service_and_widget():
    keys = {s.key for s in CATALOG}
    assert keys == {
        "card_loss", "employment_registration", "unemployment_registration", "pension_enrolment",
        "benefit_certification", "business_loan", "public_welfare_job",
    }
    used = set()
    for s in CATALOG:
        Draft202012Validator.check_schema(s.info.form)
        assert sorted(s.info.form["x-order"]) == sorted(s.info.form["properties"])
        for field, prop in s.info.form["properties"].items():
            used.add(prop["x-widget"])
            assert prop.get("title"), (s.key, field)
            if prop["x-widget"] == "choice":
                assert len(prop["oneOf"]) <= 8
            if prop["x-widget"] == "pick":
                assert len(prop["oneOf"]) >= 20
            if prop["x-widget"] == "date":
                assert prop["format"] == "date" and set(prop["x-date"]) == {"from", "to"}
        for text in (s.info.basis, s.info.fee, s.info.phone, s.info.supervision_phone):
            assert text
        assert s.info.materials and s.info.process
    assert used == WIDGETS
    assert CATALOG.get("card_loss").info.online_only is True
    assert CATALOG.get("business_loan").info.handling == "forwarded"
    assert CATALOG.get("public_welfare_job").info.handling == "forwarded"
    tiers = CATALOG.get("pension_enrolment").info.form["properties"]["tier"]["oneOf"]
    assert all(re.fullmatch(r"\d+\.\d{2}", t["x-amount"]) for t in tiers)
    phone = CATALOG.get("employment_registration").info.form["properties"]["phone"]
    assert phone["pattern"] == r"^1[3-9]\d{9}$"


def test_a_bad_catalog_stops_start_up(tmp_path):
    good = json.loads(CATALOG.body)["services"][1]
    for broken in (
        {**good, "form": {**good["form"], "type": "array"}},
        {**good, "form": {**good["form"], "x-order": good["form"]["x-order"][1:]}},
        {**good, "form": {**good["form"], "properties": {**good["form"]["properties"], "x": {"x-widget": "slider"}}}},
        {**good, "level": "password"},
    ):
        with pytest.raises(CatalogError):
            compile_service(broken)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"services": [good, good]}), encoding="utf-8")
    with pytest.raises(CatalogError):
        create_app(tmp_path / "b.sqlite3", BASE, catalog_path=path)


@pytest.mark.parametrize("ref", ["#/$defs/phone", "#/properties/nope", "https://example.invalid/phone.json"])
def test_a_form_whose_ref_does_not_resolve_stops_start_up(tmp_path, ref):
    """It used to pass start-up and answer 500 to every filing of the service."""
    cat = json.loads(CATALOG.body)
    svc = next(s for s in cat["services"] if s["key"] == "employment_registration")
    svc["form"]["properties"]["phone"]["$ref"] = ref
    with pytest.raises(CatalogError, match="cannot be validated"):
        compile_service(svc)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cat, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogError):
        create_app(tmp_path / "b.sqlite3", BASE, catalog_path=path)


def test_a_ref_into_the_form_resolves_for_the_backend_too(client):
    cat = json.loads(CATALOG.body)
    svc = next(s for s in cat["services"] if s["key"] == "employment_registration")
    svc["form"]["$defs"] = {"mobile": {"not": {"const": "13800000000"}}}  # only the referenced schema says so
    svc["form"]["properties"]["phone"]["$ref"] = "#/$defs/mobile"
    service = compile_service(svc)
    answers = answers_for(client, "employment_registration", ELDER)
    assert service.problems(answers) == []
    assert service.problems({**answers, "phone": "13800000000"}) == [{"loc": ["body", "answers", "phone"], "type": "not"}]


def test_answers_a_validator_breaks_on_are_a_422_never_a_500(db_path, clock, certs, monkeypatch):
    from backend.catalog import Service

    def boom(self, answers):
        raise RecursionError("a validator that breaks on these answers")

    monkeypatch.setattr(Service, "_problems", boom)
    app = create_app(db_path, BASE, clock=clock, today=TODAY, seed_demo_people=True, session_burst=1000)
    with TestClient(with_cert_pem(app, certs["t1"]), base_url=BASE, raise_server_exceptions=False) as c:
        r = file(c, body("employment_registration", answers_for(c, "employment_registration", ELDER)))
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert problem_fields(r) == [(("body", "answers"), "schema")]


def test_services_needs_a_certificate_and_has_a_strong_etag(client, bare):
    assert bare.get("/v1/services").json()["code"] == "certificate_required"
    r = client.get("/v1/services")
    assert r.status_code == 200
    etag = r.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    services = r.json()["services"]
    assert [s["key"] for s in services] == [s.key for s in CATALOG]
    for s in services:
        ServiceInfo.model_validate(s)
    for offered in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = client.get("/v1/services", headers={"If-None-Match": offered})
        assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert client.get("/v1/services", headers={"If-None-Match": '"stale"'}).status_code == 200


# --- attachments -------------------------------------------------------------------------------------------------


def test_attachment_stored_once_and_replayed(client, db_path):
    data = jpeg(1)
    r = put(client, data)
    assert r.status_code == 201
    stored = parse(AttachmentStored, r.content)
    assert (stored.sha256, stored.size, stored.media_type, stored.replayed) == (sha(data), len(data), "image/jpeg", False)
    again = put(client, data)
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert Database(db_path).attachment(sha(data)) == ("image/jpeg", data)
    sig = png(3)
    assert put(client, sig, "image/png").json()["media_type"] == "image/png"


def test_attachment_needs_a_certificate(bare):
    data = jpeg(2)
    assert put(bare, data).status_code == 401


def test_attachments_between_64_kib_and_300_kb_pass_the_body_guard(client):
    rng = random.Random(5)
    img = Image.frombytes("RGB", (400, 300), bytes(rng.randrange(256) for _ in range(400 * 300 * 3)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    assert 64 * 1024 < len(data) <= 307_200
    assert put(client, data).status_code == 201


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, "PNG")  # a few KB that claim 36 megapixels
    return buf.getvalue()


def _truncated() -> bytes:
    return jpeg(7, size=(200, 200))[:-200]


@pytest.mark.parametrize(
    ("data", "media", "digest", "status", "kind"),
    [
        (jpeg(4), "image/gif", None, 422, "media_type"),
        (jpeg(4), None, None, 422, "media_type"),
        (jpeg(4), "image/jpeg", "0" * 64, 422, "digest_mismatch"),
        (png(4), "image/jpeg", None, 422, "magic_mismatch"),
        (b"\xff\xd8\xff" + b"not really a jpeg" * 10, "image/jpeg", None, 422, "undecodable"),
        (_truncated(), "image/jpeg", None, 422, "undecodable"),
        (_bomb(), "image/png", None, 422, "image_size"),
        (b"", "image/png", None, 422, "magic_mismatch"),
    ],
    ids=["gif", "no-type", "digest", "magic", "garbage", "truncated", "bomb", "empty"],
)
def test_attachment_refusals_name_what_is_wrong(client, data, media, digest, status, kind):
    headers = {} if media is None else {"Content-Type": media}
    r = client.put(f"/v1/attachments/{digest or sha(data)}", content=data, headers=headers)
    assert r.status_code == status
    assert r.json()["code"] == "attachment_invalid"
    assert [p["type"] for p in r.json()["fields"]] == [kind]


def test_attachment_over_300_kb_is_413(client):
    data = b"\xff\xd8\xff" + b"\0" * 307_200
    r = client.put(f"/v1/attachments/{sha(data)}", content=data, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413 and r.json()["code"] == "attachment_invalid"


def test_attachment_path_must_be_a_digest(client):
    r = client.put("/v1/attachments/ABC", content=jpeg(1), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"


# --- filing every service ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", [s.key for s in CATALOG])
def test_every_service_files_with_its_receipt(client, service):
    info = CATALOG.get(service).info
    answers = answers_for(client, service, ELDER, seed=1)
    b = body(service, answers)
    r = file(client, b)
    assert r.status_code == 201, r.text
    f = parse(Filing, r.content)
    assert f.service == service and f.title == info.title and f.replayed is False
    assert f.local_number == b["local_number"]
    assert f.handling == info.handling
    expected = "done" if service == "card_loss" else "forwarded" if info.handling == "forwarded" else "received"
    assert f.status == expected
    assert f.due_date == add_working_days(TODAY, info.time_limit_days)
    lines = dict(f.lines)
    assert lines["受理编号"] == f.filing_id and lines["事项"] == info.title
    assert lines["办理方式"] == ("转乡镇办理" if info.handling == "forwarded" else "本站办理")
    assert lines["本地编号"] == b["local_number"] and lines["咨询电话"] == info.phone
    assert lines["姓名"] == "王*兰" and lines["身份证号"] == "3701**********0527"
    if info.time_limit_days:
        d = f.due_date
        assert lines["承诺办结"].startswith(f"{d.year}年{d.month}月{d.day}日前")
    # Never the full ID number or name in the answer (receipts are masked).
    assert ELDER["ssn"] not in r.text and ELDER["name"] not in r.text
    # The receipt QR verifies and says where the filing stands.
    v = client.get(urlsplit(f.verify_url).path + "?" + urlsplit(f.verify_url).query)
    assert v.json()["genuine"] is True and v.json()["filing_status"] == expected and v.json()["title"] == info.title


def test_forwarded_receipt_names_the_attachments(client):
    r = file(client, body("business_loan", answers_for(client, "business_loan", ELDER)))
    assert dict(parse(Filing, r.content).lines)["提交材料"] == "营业执照、经营场所照片、本人签名"


def test_due_date_counts_working_days_and_holidays(db_path, clock, certs):
    app = create_app(db_path, BASE, clock=clock, seed_demo_people=True, holidays=frozenset({dt.date(2025, 3, 11)}))
    with TestClient(with_cert_pem(app, certs["t1"]), base_url=BASE) as c:
        r = file(c, body("unemployment_registration", answers_for(c, "unemployment_registration", ELDER)))
    assert r.json()["due_date"] == "2025-03-14"  # Mon 10th + 3 working days, skipping Tue 11th


def test_card_loss_filing_suspends_the_card_and_old_route_agrees(client, db_path):
    r = file(client, body("card_loss", {}, credential="id_card"))
    assert r.status_code == 201 and r.json()["status"] == "done"
    assert Database(db_path).card_status(ELDER["ssn"])[0] == "temporarily_suspended"
    auth = open_session(client)
    old = client.post("/v1/filings/card-loss", json={"created_at": NOW}, headers={**auth, "Idempotency-Key": "old-1234"})
    assert old.json()["status"] == "already_reported" and old.json()["filing_id"] == r.json()["filing_id"]
    lines = dict(map(tuple, r.json()["lines"]))
    assert lines["挂失状态"] == "已临时挂失"


def test_card_loss_for_a_person_without_a_card_is_404(client):
    r = file(client, body("card_loss", {}, person=STRANGER, credential="id_card"))
    assert r.status_code == 404 and r.json()["code"] == "no_card"


# --- idempotency and the local number --------------------------------------------------------------------------


def test_same_key_same_body_replays_other_body_conflicts(client, db_path):
    b = body("unemployment_registration", answers_for(client, "unemployment_registration", ELDER))
    first = file(client, b, key="same-key-0001")
    again = file(client, b, key="same-key-0001")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["replayed"] is True and again.json()["filing_id"] == first.json()["filing_id"]
    assert {k: v for k, v in again.json().items() if k != "replayed"} == {
        k: v for k, v in first.json().items() if k != "replayed"
    }
    changed = {**b, "answers": {**b["answers"], "wants_training": not b["answers"]["wants_training"]}}
    r = file(client, changed, key="same-key-0001")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"
    assert Database(db_path).count_filings(ELDER["ssn"]) == 1


def test_the_same_key_from_another_terminal_is_a_conflict(client, other):
    b = body("unemployment_registration", answers_for(client, "unemployment_registration", ELDER))
    assert file(client, b, key="shared-key-01").status_code == 201
    assert file(other, b, key="shared-key-01").status_code == 409


def test_idempotency_key_is_required(client):
    b = body("card_loss", {})
    for headers in ({}, {"Idempotency-Key": "short"}, {"Idempotency-Key": "bad key with spaces"}):
        r = client.post("/v1/filings", json=b, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"


def test_the_local_number_is_the_filing(client, other, db_path):
    b = body("public_welfare_job", answers_for(client, "public_welfare_job", ELDER))
    first = file(client, b, key="outbox-key-aaaa")
    # The outbox lost its key (a crash between write and commit, say) and sends the same local number anew.
    again = file(client, {**b, "created_at": "2025-03-10T17:31:00+08:00"}, key="outbox-key-bbbb")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["filing_id"] == first.json()["filing_id"]
    assert file(client, b, key="outbox-key-bbbb").status_code == 409  # that key now names the filing's body
    assert Database(db_path).count_filings(ELDER["ssn"]) == 1
    # Another terminal's local numbers are its own.
    assert file(other, b, key="outbox-key-cccc").status_code == 201
    # The same local number for another person is never merged into the first one's filing.
    b2 = {**body("public_welfare_job", answers_for(client, "public_welfare_job", WORKER), person=WORKER),
          "local_number": b["local_number"]}
    r = file(client, b2, key="outbox-key-dddd")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_conflict"


# --- refusals ---------------------------------------------------------------------------------------------------------


def test_unknown_service_is_404(client):
    r = file(client, body("no_such_service", {}))
    assert r.status_code == 404 and r.json()["code"] == "unknown_service"


@pytest.mark.parametrize(("credential", "status"), [("id_card", 403), ("sscard_pin", 201), ("ecard", 201)])
def test_level_too_low(client, credential, status):
    b = body("business_loan", answers_for(client, "business_loan", ELDER), credential=credential)
    r = file(client, b)
    assert r.status_code == status
    if status == 403:
        assert r.json()["code"] == "level_too_low"


@pytest.mark.parametrize(
    ("created_at", "kept"),
    [
        ("2025-02-09T17:30:00+08:00", "2025-02-09T17:30:00+08:00"),  # 29 days in the outbox
        ("2025-02-07T17:30:00+08:00", "2025-02-07T17:30:00+08:00"),  # 31 days: still what the resident confirmed
        ("2024-03-10T17:30:00+08:00", "2024-03-10T17:30:00+08:00"),  # a terminal offline for a year
        ("2025-03-10T18:20:00+08:00", "2025-03-10T09:30:00+00:00"),  # a terminal clock 50 minutes fast: now
        ("2025-03-10T19:00:00+08:00", "2025-03-10T09:30:00+00:00"),
        ("2030-01-01T00:00:00+08:00", "2025-03-10T09:30:00+00:00"),
        ("2025-03-10T17:30:00", None),  # naive: not a time at all
    ],
)
def test_created_at_is_the_terminals_never_refused_for_its_age_and_never_in_the_future(client, created_at, kept):
    """A filing the resident was told 已受理，待上传 is filed however late it arrives (it used to be refused for
    good after 30 days); a time ahead of the backend's is kept as the time it was received."""
    b = body("unemployment_registration", answers_for(client, "unemployment_registration", ELDER), created_at=created_at)
    r = file(client, b)
    if kept is None:
        assert r.status_code == 422 and r.json()["fields"][0]["loc"] == ["body", "created_at"]
        return
    assert r.status_code == 201, r.text
    got = parse(Filing, r.content)
    assert got.created_at == dt.datetime.fromisoformat(kept) and got.received_at == dt.datetime.fromisoformat(
        "2025-03-10T09:30:00+00:00")
    assert file(client, b).json()["replayed"] is True  # the same body again is the same filing


def test_the_body_cannot_name_the_terminal_or_an_unknown_credential(client):
    b = body("card_loss", {})
    assert file(client, {**b, "terminal_id": "T-9"}).status_code == 422
    assert file(client, {**b, "person": {**b["person"], "credential": "password"}}).status_code == 422
    assert file(client, {**b, "local_number": "12345"}).status_code == 422
    assert file(client, {**b, "person": {**b["person"], "ssn": "370102195203140528"}}).status_code == 422


def test_without_a_certificate_nothing_is_filed(bare):
    r = file(bare, body("card_loss", {}))
    assert r.status_code == 401 and r.json()["code"] == "certificate_required"


def test_a_token_sent_must_be_this_persons_and_this_terminals(client, other):
    b = body("unemployment_registration", answers_for(client, "unemployment_registration", ELDER))
    assert file(client, b, key="tok-key-00001", auth=open_session(client)).status_code == 201
    r = file(client, {**b, "local_number": local_number()}, key="tok-key-00002", auth=open_session(client, WORKER["ssn"]))
    assert r.status_code == 403 and r.json()["code"] == "person_mismatch"
    r = file(client, {**b, "local_number": local_number()}, key="tok-key-00003",
             auth={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"
    r = file(client, {**b, "local_number": local_number()}, key="tok-key-00004", auth=open_session(other))
    assert r.status_code == 403 and r.json()["code"] == "wrong_terminal"


def _valid(client, service="business_loan"):
    return answers_for(client, service, ELDER)


# (service, field, bad value, keyword): one per widget type, the 422 names the field and the keyword.
WIDGET_CASES = [
    ("unemployment_registration", "reason", "fired_for_fun", "oneOf"),  # choice
    ("unemployment_registration", "village", "v99", "oneOf"),  # pick
    ("unemployment_registration", "wants_training", "是", "type"),  # yesno
    ("unemployment_registration", "last_job_end", "2025-02-30", "format"),  # date
    ("unemployment_registration", "phone", "12345", "pattern"),  # keypad (phone)
    ("business_loan", "amount", 500, "minimum"),  # keypad (integer)
    ("business_loan", "amount", 10500, "multipleOf"),
    ("business_loan", "licence", "not-a-digest", "pattern"),  # document
    ("benefit_certification", "face", "F" * 64, "pattern"),  # face
    ("business_loan", "signature", 12, "type"),  # signature
    ("unemployment_registration", "name", "", "minLength"),  # prefill
]


@pytest.mark.parametrize(("service", "field", "value", "keyword"), WIDGET_CASES, ids=[c[1] + "-" + c[3] for c in WIDGET_CASES])
def test_a_refused_answer_names_its_field(client, service, field, value, keyword):
    answers = {**answers_for(client, service, ELDER), field: value}
    r = file(client, body(service, answers))
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert (("body", "answers", field), keyword) in problem_fields(r)
    assert str(value) not in json.dumps(r.json()["fields"]) or str(value) in field  # never echoed


def test_missing_extra_and_foreign_prefill_answers(client):
    answers = _valid(client, "unemployment_registration")
    del answers["phone"]
    r = file(client, body("unemployment_registration", {**answers, "370102195203140527": 1}))
    assert r.status_code == 422
    got = problem_fields(r)
    assert (("body", "answers", "phone"), "required") in got
    assert (("body", "answers"), "additionalProperties") in got  # the unknown key is input: not echoed
    assert "370102195203140527" not in r.text
    answers = {**_valid(client, "unemployment_registration"), "id_number": WORKER["ssn"]}
    r = file(client, body("unemployment_registration", answers))
    assert (("body", "answers", "id_number"), "prefill_mismatch") in problem_fields(r)
    r = file(client, body("unemployment_registration", "not an object"))  # answers must be an object
    assert r.status_code == 422


def test_an_attachment_not_uploaded_is_409_naming_the_field(client):
    answers = _valid(client)
    ghost = sha(b"never uploaded")
    r = file(client, body("business_loan", {**answers, "premises": ghost}))
    assert r.status_code == 409 and r.json()["code"] == "attachment_missing"
    assert problem_fields(r) == [(("body", "answers", "premises"), "attachment_missing")]
    # Upload it, send the same again (same key): filed.
    data = jpeg(99)
    assert put(client, data).status_code == 201
    b = body("business_loan", {**answers, "premises": sha(data)})
    assert file(client, b, key="after-upload-1").status_code == 201


def test_an_attachment_of_the_wrong_kind_is_refused(client):
    answers = _valid(client)
    r = file(client, body("business_loan", {**answers, "signature": answers["licence"]}))  # a JPEG as signature
    assert r.status_code == 422 and problem_fields(r) == [(("body", "answers", "signature"), "media_type")]


_VALID: dict[tuple[int, str], dict] = {}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    service=st.sampled_from([s.key for s in CATALOG] + ["nope"]),
    data=st.data(),
    credential=st.sampled_from(["id_card", "sscard_pin", "ecard"]),
)
def test_random_answers_never_make_a_500(client, service, data, credential):
    json_value = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )
    known = list(CATALOG.get(service).info.form["properties"]) if service != "nope" else []
    keys = st.sampled_from(known) | st.text(max_size=8) if known else st.text(max_size=8)
    answers = data.draw(st.dictionaries(keys, json_value, max_size=8))
    if service != "nope" and data.draw(st.booleans()):
        # Mostly valid: a good filing with a few answers replaced or dropped.
        base = _VALID.get((id(client), service))
        if base is None:
            base = _VALID[(id(client), service)] = answers_for(client, service, ELDER)
        drop = data.draw(st.lists(st.sampled_from(known), max_size=2)) if known else []
        answers = {**{k: v for k, v in base.items() if k not in drop}, **answers}
    b = body(service, answers, credential=credential)
    r = file(client, b, key=f"hyp-{data.draw(st.integers(0, 10**9)):012d}")
    assert r.status_code in (200, 201, 403, 404, 409, 422), r.text
    assert "code" in r.json() or "filing_id" in r.json()


# --- 我的办件 -------------------------------------------------------------------------------------------------------


def test_my_filings_newest_first_and_by_local_number(client, clock, db_path):
    first = file(client, body("unemployment_registration", _valid(client, "unemployment_registration")), key="mine-00001")
    clock.t += 60
    second = file(client, body("public_welfare_job", _valid(client, "public_welfare_job")), key="mine-00002")
    file(client, body("unemployment_registration", answers_for(client, "unemployment_registration", WORKER),
                      person=WORKER), key="mine-00003")
    auth = open_session(client)
    r = client.get("/v1/filings", headers=auth)
    rows = parse(FilingList, r.content).filings
    assert [f.filing_id for f in rows] == [second.json()["filing_id"], first.json()["filing_id"]]
    assert rows[0].status == "forwarded" and rows[1].status == "received"
    by_local = client.get(f"/v1/filings/{second.json()['local_number']}", headers=auth)
    assert parse(FilingSummary, by_local.content).filing_id == second.json()["filing_id"]
    by_id = client.get(f"/v1/filings/{first.json()['filing_id']}", headers=auth)
    assert parse(FilingSummary, by_id.content).local_number == first.json()["local_number"]
    assert ELDER["ssn"] not in r.text
    actions = [a.action for a in Database(db_path).audit_of(ELDER["ssn"])]
    assert actions.count("filing_filed") == 2 and "filings_listed" in actions and "filing_read" in actions


def test_my_filings_need_a_token_and_show_only_the_persons(client):
    f = file(client, body("unemployment_registration", _valid(client, "unemployment_registration")))
    assert client.get("/v1/filings").status_code == 401
    worker = open_session(client, WORKER["ssn"])
    assert client.get("/v1/filings", headers=worker).json() == {"filings": []}
    for ref in (f.json()["filing_id"], f.json()["local_number"]):
        r = client.get(f"/v1/filings/{ref}", headers=worker)
        assert r.status_code == 404 and r.json()["code"] == "unknown_filing"


# --- ratings -----------------------------------------------------------------------------------------------------------


def rate(client, key="rate-key-0001", **over):
    b = {"service": "unemployment_registration", "satisfaction": "satisfied", "created_at": NOW, **over}
    return client.post("/v1/ratings", json=b, headers={"Idempotency-Key": key})


def test_ratings_are_counted_per_station(client, other, bare):
    assert rate(client, "r-000000001").status_code == 201
    again = rate(client, "r-000000001")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert rate(client, "r-000000001", satisfaction="dissatisfied").status_code == 409
    assert rate(client, "r-000000002", satisfaction="basically_satisfied", filing_ref="L20250310-ABCDEF").status_code == 201
    assert rate(client, "r-000000003", satisfaction="dissatisfied", reasons=["too_slow", "staff"]).status_code == 201
    assert rate(other, "r-000000004", satisfaction="dissatisfied", reasons=["not_clear"]).status_code == 201
    s = parse(RatingSummary, client.get("/v1/ratings/summary").content)
    assert s.site_id == "370102-001" and s.total == 3
    assert s.counts == {"satisfied": 1, "basically_satisfied": 1, "dissatisfied": 1}
    assert s.reasons == {"too_slow": 1, "hard_to_use": 0, "not_clear": 0, "not_solved": 0, "staff": 1}
    assert s.satisfied_share == pytest.approx(2 / 3)
    t2 = other.get("/v1/ratings/summary").json()
    assert t2["total"] == 1 and t2["reasons"]["not_clear"] == 1
    assert bare.get("/v1/ratings/summary").status_code == 401
    assert rate(bare, "r-000000005").status_code == 401


def test_an_empty_summary_is_zero(client):
    s = client.get("/v1/ratings/summary").json()
    assert s["total"] == 0 and s["satisfied_share"] == 0.0 and set(s["counts"].values()) == {0}


def test_rating_reasons_only_with_dissatisfied(client):
    r = rate(client, satisfaction="satisfied", reasons=["too_slow"])
    assert r.status_code == 422 and problem_fields(r) == [(("body", "reasons"), "reasons_not_allowed")]
    assert rate(client, "r-000000009", reasons=["fun"], satisfaction="dissatisfied").status_code == 422
    assert client.post("/v1/ratings", json={"service": "x", "satisfaction": "satisfied", "created_at": NOW}).status_code == 400
    assert rate(client, "r-000000010", created_at="2024-01-01T00:00:00+08:00").status_code == 422


# --- the township worklist ---------------------------------------------------------------------------------------------


@pytest.fixture
def worklist(app):
    with TestClient(app.state.worklist_app, base_url=WORKLIST, follow_redirects=False) as c:
        yield c


@pytest.fixture
def clerk(app, db_path, worklist):
    set_clerk_password(db_path.parent / "keys", PASSWORD)
    login(worklist, PASSWORD)
    return worklist


def login(c, password):
    page = c.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)
    return c.post("/login", data={"nonce": nonce, "password": password})


def csrf(c, path="/"):
    return re.search(r'name="csrf" value="([^"]+)"', c.get(path).text).group(1)


def test_worklist_needs_a_signed_in_clerk(app, db_path, worklist, client):
    f = file(client, body("business_loan", _valid(client)))
    fid = f.json()["filing_id"]
    for path in ("/", f"/filings/{fid}", f"/attachments/{'0' * 64}"):
        r = worklist.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login"
    assert worklist.post(f"/filings/{fid}/accept", data={"csrf": "x"}).status_code == 303
    assert login(worklist, PASSWORD).status_code == 401  # no password set yet: nobody signs in
    path = set_clerk_password(db_path.parent / "keys", PASSWORD)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and PASSWORD not in path.read_text()
    assert login(worklist, "wrong-password").status_code == 401
    r = login(worklist, PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "samesite=strict" in cookie.lower()
    assert worklist.get("/").status_code == 200


def test_sign_in_needs_the_forms_nonce_and_is_rate_limited(app, db_path, worklist):
    set_clerk_password(db_path.parent / "keys", PASSWORD)
    worklist.get("/login")
    r = worklist.post("/login", data={"nonce": "forged", "password": PASSWORD})
    assert r.status_code == 403
    codes = [login(worklist, "guess-guess").status_code for _ in range(5)]
    assert 429 in codes and "Retry-After" in login(worklist, PASSWORD).headers


def test_clerk_password_rules(tmp_path):
    with pytest.raises(ValueError):
        set_clerk_password(tmp_path, "short")
    assert check_clerk_password(tmp_path, "anything") is False  # none set
    set_clerk_password(tmp_path, "a-long-password")
    assert check_clerk_password(tmp_path, "a-long-password") and not check_clerk_password(tmp_path, "a-long-passwore")


def test_set_clerk_password_from_stdin(tmp_path, monkeypatch, capsys):
    from backend.__main__ import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("stdin-password-1\n"))
    assert main(["--data", str(tmp_path), "--set-clerk-password"]) == 0
    assert check_clerk_password(tmp_path / "keys", "stdin-password-1")
    assert "stdin-password-1" not in capsys.readouterr().out


def test_worklist_accept_return_complete(clerk, client):
    loan = file(client, body("business_loan", _valid(client)), key="wl-key-00001").json()
    job = file(client, body("public_welfare_job", _valid(client, "public_welfare_job")), key="wl-key-00002").json()
    direct = file(client, body("unemployment_registration", _valid(client, "unemployment_registration")),
                  key="wl-key-00003").json()
    page = clerk.get("/")
    assert page.status_code == 200 and "王*兰" in page.text and "王秀兰" not in page.text
    assert loan["filing_id"] in page.text and job["filing_id"] in page.text
    assert direct["filing_id"] not in page.text  # direct filings stay with the village
    assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    token = csrf(clerk)
    auth = open_session(client)

    def status_of(fid):
        return client.get(f"/v1/filings/{fid}", headers=auth).json()

    # No CSRF token, or a wrong one: nothing changes.
    assert clerk.post(f"/filings/{loan['filing_id']}/accept", data={}).status_code == 403
    assert clerk.post(f"/filings/{loan['filing_id']}/accept", data={"csrf": "forged"}).status_code == 403
    assert status_of(loan["filing_id"])["status"] == "forwarded"
    # Completing before accepting is refused.
    assert clerk.post(f"/filings/{loan['filing_id']}/complete", data={"csrf": token}).status_code == 409
    r = clerk.post(f"/filings/{loan['filing_id']}/accept", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert status_of(loan["filing_id"])["status"] == "in_progress"
    r = clerk.post(f"/filings/{loan['filing_id']}/complete", data={"csrf": token, "back": "detail"})
    assert r.headers["location"] == f"/filings/{loan['filing_id']}"
    assert status_of(loan["filing_id"])["status"] == "done"
    assert clerk.post(f"/filings/{loan['filing_id']}/return", data={"csrf": token, "reason": "材料不全"}).status_code == 409
    # Return with a reason from the list (and a note); a reason not on the list is refused.
    assert clerk.post(f"/filings/{job['filing_id']}/return", data={"csrf": token, "reason": "随便"}).status_code == 422
    r = clerk.post(f"/filings/{job['filing_id']}/return", data={"csrf": token, "reason": "材料不全", "note": "缺户口簿"})
    assert r.status_code == 303
    got = status_of(job["filing_id"])
    assert got["status"] == "returned" and got["reason"] == "材料不全：缺户口簿"
    v = client.get(urlsplit(job["verify_url"]).path + "?" + urlsplit(job["verify_url"]).query).json()
    assert v["filing_status"] == "returned" and v["filing_reason"] == "材料不全：缺户口簿"
    # Direct filings and unknown ids are not the worklist's.
    assert clerk.post(f"/filings/{direct['filing_id']}/accept", data={"csrf": token}).status_code == 404
    assert clerk.post("/filings/F-nope/accept", data={"csrf": token}).status_code == 404
    assert clerk.post(f"/filings/{job['filing_id']}/delete", data={"csrf": token}).status_code == 404


def test_worklist_detail_shows_answers_and_attachments(clerk, client):
    answers = _valid(client)
    f = file(client, body("business_loan", answers)).json()
    page = clerk.get(f"/filings/{f['filing_id']}")
    assert page.status_code == 200
    for text in ("创业担保贷款申请", "联系电话", "13800138000", "经营类型", "种植养殖", "贷款期限", "1年", "10,000", "青石村"):
        assert text in page.text, text
    for field in ("licence", "premises", "signature"):
        assert f'src="/attachments/{answers[field]}"' in page.text
    img = clerk.get(f"/attachments/{answers['signature']}")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert clerk.get(f"/attachments/{'0' * 64}").status_code == 404


def test_worklist_escapes_what_residents_typed(clerk, client):
    answers = {**answers_for(client, "public_welfare_job", STRANGER)}
    f = file(client, body("public_welfare_job", answers, person=STRANGER)).json()
    page = clerk.get(f"/filings/{f['filing_id']}")
    assert "<b>吴</b>" not in page.text and "&lt;b&gt;吴&lt;/b&gt;" in page.text


def test_worklist_shows_station_satisfaction(clerk, client, other):
    rate(client, "wl-rate-0001")
    rate(client, "wl-rate-0002", satisfaction="dissatisfied", reasons=["too_slow"])
    rate(other, "wl-rate-0003", satisfaction="basically_satisfied")
    page = clerk.get("/").text
    assert "370102-001" in page and "370102-002" in page and "办得太慢 1" in page and "50%" in page


def test_logout_ends_the_clerk_session(clerk):
    token = csrf(clerk)
    assert clerk.post("/logout", data={"csrf": token}).status_code == 303
    assert clerk.get("/").status_code == 303


def test_verify_page_shows_where_a_filing_stands(client):
    f = file(client, body("public_welfare_job", _valid(client, "public_welfare_job"))).json()
    parts = urlsplit(f["verify_url"])
    page = client.get(f"{parts.path}?{parts.query}", headers={"Accept": "text/html"})
    assert "办理进度" in page.text and "待乡镇受理" in page.text


def test_a_revoked_terminal_files_nothing(app, client, certs, tmp_path, db_path):
    from backend.identity import certificate_fingerprint, terminal_from_pem

    t = terminal_from_pem(certs["t1"])
    Database(db_path).revoke_certificate(certificate_fingerprint(certs["t1"]), t.terminal_id, t.site_id, NOW)
    for r in (
        client.get("/v1/services"),
        put(client, jpeg(1)),
        file(client, body("card_loss", {})),
        rate(client),
        client.get("/v1/ratings/summary"),
    ):
        assert r.status_code == 403 and r.json()["code"] == "certificate_revoked"


def test_an_older_database_gains_the_filing_columns(tmp_path, clock, certs):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE filings (
            filing_id TEXT PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL, ssn TEXT NOT NULL,
            name TEXT, credential TEXT NOT NULL, terminal_id TEXT NOT NULL, site_id TEXT NOT NULL,
            receipt_id TEXT NOT NULL, created_at TEXT NOT NULL, received_at TEXT NOT NULL
        );
        INSERT INTO filings VALUES ('F20250101-0000000001', 'card_loss', 'accepted', '370102195203140527', '王秀兰',
            'sscard_pin', 'T-0001', '370102-001', 'R20250101-0000000001', '2025-01-01T09:00:00+08:00',
            '2025-01-01T09:00:01+08:00');
        """
    )
    conn.commit()
    conn.close()
    app = create_app(path, BASE, clock=clock, seed_demo_people=True)
    old = Database(path).filing("F20250101-0000000001")
    assert (old.service, old.progress, old.handling, old.due_date) == ("card_loss", "done", "direct", "2025-01-01")
    with TestClient(with_cert_pem(app, certs["t1"]), base_url=BASE) as c:
        rows = c.get("/v1/filings", headers=open_session(c)).json()["filings"]
        assert [r["filing_id"] for r in rows] == ["F20250101-0000000001"]
        assert file(c, body("unemployment_registration", answers_for(c, "unemployment_registration", ELDER))).status_code == 201
