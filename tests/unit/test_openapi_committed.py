"""backend/openapi.json is the contract: it must equal what the running server serves (over mutual TLS), and
every request body the kiosk sends must be valid against it.

Regenerate with `python -m backend --write-openapi` after changing the API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from api.enums import Credential, ReceiptService, Satisfaction
from api.models import (
    REQUEST_MODELS,
    CardLossRequest,
    FilingPerson,
    FilingRequest,
    HelpRequest,
    PensionRequest,
    RatingRequest,
    ReceiptRequest,
    SessionOpen,
    encode,
)
from backend.app import create_app
from backend.server import start_server

pytestmark = pytest.mark.timeout(60)

COMMITTED = Path(__file__).resolve().parents[2] / "backend" / "openapi.json"
NOW = "2025-03-10T17:30:00+08:00"

# (schema name, request body as the client sends it). Add the bodies a client builds here.
REQUEST_BODIES: list[tuple[str, Any]] = [
    ("SessionOpen", encode(SessionOpen(credential=Credential.SSCARD_PIN, ssn="370102195203140527"))),
    ("SessionOpen", encode(SessionOpen(credential=Credential.ID_CARD, ssn="41132219780901441x", name="李建国"))),
    ("SessionOpen", encode(SessionOpen(credential=Credential.ECARD, code="ESSC1.abc.def"))),
    ("PensionRequest", encode(PensionRequest())),
    ("PensionRequest", encode(PensionRequest(ssn="370102195203140527"))),
    ("ReceiptRequest", encode(ReceiptRequest(service=ReceiptService.PENSION_QUERY, created_at=NOW))),
    ("CardLossRequest", encode(CardLossRequest(created_at=NOW))),
    ("FilingRequest", encode(FilingRequest(
        service="business_loan", local_number="L20250310-7QK2MX", created_at=NOW, answers={"amount": 50000},
        person=FilingPerson(ssn="370102195203140527", name="王秀兰", credential=Credential.SSCARD_PIN),
    ))),
    ("RatingRequest", encode(RatingRequest(service="card_loss", satisfaction=Satisfaction.SATISFIED, created_at=NOW))),
    ("HelpRequest", encode(HelpRequest(screen="pin", created_at=NOW))),
]

# Bodies the schema itself must refuse (a terminal naming itself or another person, unknown fields).
REFUSED_BODIES: list[tuple[str, Any]] = [
    ("SessionOpen", {"credential": "id_card", "ssn": "370102195203140527", "terminal_id": "T-1"}),
    ("SessionOpen", {"credential": "password", "ssn": "370102195203140527"}),
    ("ReceiptRequest", {"service": "pension_query", "created_at": NOW, "lines": [["a", "b"]]}),
    ("ReceiptRequest", {"service": "anything", "created_at": NOW}),
    ("CardLossRequest", {"created_at": NOW, "ssn": "370102195203140527"}),
    ("PensionRequest", {"ssn": "123"}),
    ("HelpRequest", {"screen": "pin", "created_at": NOW, "ssn": "370102195203140527"}),  # nothing personal
    ("HelpRequest", {"screen": "../etc", "created_at": NOW}),
]


def _committed() -> dict[str, Any]:
    return json.loads(COMMITTED.read_text(encoding="utf-8"))


def _validator(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; refs point into the document's components.
    assert doc["openapi"].startswith("3.1")
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def test_committed_openapi_matches_the_running_server(tmp_path):
    committed = _committed()
    server = start_server(tmp_path / "backend")
    try:
        r = requests.get(
            f"{server.url}/openapi.json",
            verify=str(server.ca_path),
            cert=(str(server.client_cert), str(server.client_key)),
            timeout=(2, 5),
        )
    finally:
        server.stop()
    assert r.status_code == 200
    assert r.json() == committed, "backend/openapi.json is stale: run `python -m backend --write-openapi`"


def test_committed_openapi_matches_the_app(tmp_path):
    committed = _committed()
    app = create_app(tmp_path / "b.sqlite3", "https://127.0.0.1")
    assert json.loads(json.dumps(app.openapi())) == committed
    paths = set(committed["paths"])
    assert {
        "/v1/health",
        "/v1/sessions",
        "/v1/sessions/current",
        "/v1/pension",
        "/v1/receipts",
        "/v1/receipts/{receipt_id}/verify",
        "/v1/filings/card-loss",
        "/v1/filings/{filing_id}",
        "/v1/audit",
    } <= paths
    assert not any(p.startswith("/v1/demo/") for p in paths)  # demo routes are not the contract


def test_every_request_model_is_in_the_contract():
    schemas = _committed()["components"]["schemas"]
    for model in REQUEST_MODELS:
        assert model.__name__ in schemas, model
        assert schemas[model.__name__].get("additionalProperties") is False, model  # extra fields refused
    assert {name for name, _ in REQUEST_BODIES} == {m.__name__ for m in REQUEST_MODELS}


@pytest.mark.parametrize(("name", "body"), REQUEST_BODIES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(REQUEST_BODIES)])
def test_request_bodies_validate_against_the_committed_schema(name, body):
    instance = json.loads(body) if isinstance(body, (bytes, str)) else body
    _validator(_committed(), name).validate(instance)


@pytest.mark.parametrize(("name", "body"), REFUSED_BODIES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(REFUSED_BODIES)])
def test_the_committed_schema_refuses_bodies_the_backend_refuses(name, body):
    assert not _validator(_committed(), name).is_valid(body)
