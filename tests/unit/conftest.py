"""Fixtures the backend's unit tests share: a settable clock and client certificates of two terminals (a test
module's own fixture of the same name wins)."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.pki import issue_client_cert


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """PEM client certificates: two terminals at two sites."""
    d = tmp_path_factory.mktemp("pki")
    out = {}
    for name, terminal, site in (("t1", "T-0001", "370102-001"), ("t2", "T-0002", "370102-002")):
        cert, _ = issue_client_cert(d, terminal, site_id=site)
        out[name] = cert.read_text()
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "backend.sqlite3"
