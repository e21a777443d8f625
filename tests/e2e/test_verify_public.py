"""The public receipt-verification listener: a phone without any certificate checks a receipt's QR code.

HTTPS with the server certificate and no client certificate asked; only GET /v1/receipts/{id}/verify is served
(everything else 404), at most a burst of 10 then one per second per client address (429 + Retry-After).
"""

from __future__ import annotations

import datetime as dt
import ssl
from urllib.parse import urlsplit

import httpx
import pytest
import requests

from api.models import Verification, parse
from backend.server import start_server

pytestmark = pytest.mark.timeout(120)

ELDER = "370102195203140527"


def _phone(server) -> requests.Session:
    """A browser-like client: trusts only the CA, presents no certificate."""
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would replace the pinned CA
    s.verify = str(server.ca_path)
    return s


def _receipt(server, clock) -> dict:
    """A genuine receipt, made the way a terminal makes one (certificate + session token)."""
    t = requests.Session()
    t.trust_env = False
    t.verify = str(server.ca_path)
    t.cert = (str(server.client_cert), str(server.client_key))
    try:
        r = t.post(f"{server.url}/v1/sessions", json={"credential": "id_card", "ssn": ELDER}, timeout=5)
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        assert t.post(f"{server.url}/v1/pension", json={}, headers=auth, timeout=5).status_code == 200
        now = dt.datetime.fromtimestamp(clock(), dt.UTC).isoformat()
        r = t.post(f"{server.url}/v1/receipts", json={"service": "pension_query", "created_at": now},
                   headers={**auth, "Idempotency-Key": "key-public-00001"}, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()
    finally:
        t.close()


def test_a_phone_without_a_certificate_verifies_a_receipt(server, clock):
    rec = _receipt(server, clock)
    assert rec["verify_url"].startswith(f"{server.verify_url}/v1/receipts/{rec['receipt_id']}/verify?sig=")
    with _phone(server) as phone:
        r = phone.get(rec["verify_url"], timeout=5)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        v = parse(Verification, r.content)
        assert v.genuine and v.reason == "ok" and v.title == "养老金查询" and v.id_masked == "3701**********0527"
        assert ELDER not in r.text
        page = phone.get(rec["verify_url"], headers={"Accept": "text/html,*/*;q=0.8"}, timeout=5)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "回执真实有效" in page.text and "王*兰" in page.text and "王秀兰" not in page.text
        forged = phone.get(rec["verify_url"][:-3] + "AAA", timeout=5).json()
        assert forged["genuine"] is False and forged["name_masked"] is None


def test_httpx_without_a_certificate_too(server, clock):
    rec = _receipt(server, clock)
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    with httpx.Client(verify=ctx, trust_env=False, timeout=5) as phone:
        assert phone.get(rec["verify_url"]).json()["genuine"] is True


def test_nothing_else_is_served_there(server, clock):
    rec = _receipt(server, clock)
    path = urlsplit(rec["verify_url"]).path
    with _phone(server) as phone:
        for method, p in (
            ("GET", "/v1/health"), ("GET", "/openapi.json"), ("GET", "/docs"), ("POST", "/v1/sessions"),
            ("POST", "/v1/pension"), ("GET", "/v1/audit"), ("GET", f"/v1/pension/{ELDER}"),
            ("GET", "/v1/demo/ecard-code/elder"), ("POST", path), ("DELETE", path), ("GET", "/"),
        ):
            clock.t += 1  # stay within the rate limit
            r = phone.request(method, server.verify_url + p, json={} if method == "POST" else None, timeout=5)
            assert r.status_code == 404 and r.json()["code"] == "not_found", (method, p)


def test_the_mtls_listener_refuses_the_phone(server):
    with _phone(server) as phone, pytest.raises(requests.exceptions.ConnectionError):
        phone.get(f"{server.url}/v1/health", timeout=5)
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    with httpx.Client(verify=ctx, trust_env=False, timeout=5) as phone, pytest.raises(httpx.TransportError):
        phone.get(f"{server.url}/v1/health")


def test_per_address_rate_limit(server, clock):
    url = f"{server.verify_url}/v1/receipts/R1/verify?sig=x"
    with _phone(server) as phone:
        statuses = [phone.get(url, timeout=5).status_code for _ in range(12)]
        assert statuses == [200] * 10 + [429] * 2
        r = phone.get(url, timeout=5)
        assert r.json()["code"] == "rate_limited" and r.headers["Retry-After"] == "1"
        assert phone.get(server.verify_url + "/v1/health", timeout=5).status_code == 429  # every path counts
        spoofed = {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=203.0.113.7", "X-Real-IP": "203.0.113.7"}
        assert phone.get(url, headers=spoofed, timeout=5).status_code == 429  # a header is not an address
        # Another client address (loopback has a whole /8) is not held back by this one.
        ctx = ssl.create_default_context(cafile=str(server.ca_path))
        transport = httpx.HTTPTransport(verify=ctx, local_address="127.0.0.2")
        with httpx.Client(transport=transport, trust_env=False, timeout=5) as neighbour:
            assert neighbour.get(url).status_code == 200
        clock.t += 1
        assert phone.get(url, timeout=5).status_code == 200
        assert phone.get(url, timeout=5).status_code == 429


def test_receipt_base_url_names_a_public_front(tmp_path, clock):
    srv = start_server(
        tmp_path / "front", clock=clock, receipt_base_url="https://verify.example.cn/", seed_demo_people=True
    )
    try:
        rec = _receipt(srv, clock)
        assert rec["verify_url"].startswith(f"https://verify.example.cn/v1/receipts/{rec['receipt_id']}/verify?sig=")
        with _phone(srv) as phone:  # the listener itself still answers the same path
            assert phone.get(srv.verify_url + urlsplit(rec["verify_url"]).path + "?" +
                             urlsplit(rec["verify_url"]).query, timeout=5).json()["genuine"] is True
    finally:
        srv.stop()
