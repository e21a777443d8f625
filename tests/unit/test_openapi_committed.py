"""backend/openapi.json is the contract: it must equal what the running server serves (over mutual TLS).

Regenerate with `python -m backend --write-openapi` after changing the API.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from backend.app import create_app
from backend.server import start_server

pytestmark = pytest.mark.timeout(60)

COMMITTED = Path(__file__).resolve().parents[2] / "backend" / "openapi.json"


def test_committed_openapi_matches_the_running_server(tmp_path):
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
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
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    app = create_app(tmp_path / "b.sqlite3", "https://127.0.0.1")
    assert json.loads(json.dumps(app.openapi())) == committed
    paths = set(committed["paths"])
    assert {
        "/v1/health",
        "/v1/pension/{ssn}",
        "/v1/receipts",
        "/v1/receipts/{receipt_id}/verify",
        "/v1/ecard/resolve",
        "/v1/demo/ecard-code/{persona_key}",
    } <= paths
