"""Fixtures shared by the end-to-end tests of the reference backend over TLS."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.server import start_server


class FrozenClock:
    """The server's clock stands still: rate limits refill only when a test moves it (no timing in asserts)."""

    def __init__(self) -> None:
        self.t = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def server(tmp_path, clock):
    srv = start_server(tmp_path / "backend", clock=clock, seed_demo_people=True)  # the fictional residents, no /v1/demo
    yield srv
    srv.stop()


@pytest.fixture
def stub(tmp_path):
    """The filing stub (tests/e2e/filing_stub.py): a small mutual-TLS backend for the outbox's end-to-end tests."""
    from tests.e2e.filing_stub import StubServer

    srv = StubServer(tmp_path / "backend").start()
    yield srv
    srv.stop()
