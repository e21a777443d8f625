"""The runtime between the session and the outbox: what the resident is told about a refused filing."""

from __future__ import annotations

import datetime as dt

from api.enums import Credential
from kiosk import session as S
from kiosk.backend_client import BackendFailure, FailureKind
from kiosk.outbox import FAILED, Outbox, SyncWorker, _apply, send_item
from kiosk.runtime import Runtime, Site
from tests.unit.test_outbox import NAME, SSN, Clock, FakeClient, put


class _Offline:
    def open_session(self, *a, **k):
        return BackendFailure(FailureKind.OFFLINE, code="connection_error")

    def my_filings(self, token):
        raise AssertionError("no session could be opened")


def test_a_refused_filing_shows_as_returned_not_waiting_for_ever(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", tmp_path / "o.key", clock=Clock())
    item = put(box)
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.REJECTED, code="invalid_request", status=422,
                                           fields=("phone",))]
    _apply(box, item, send_item(box, client, item))
    assert box.get(item.local_number).state == FAILED
    rt = Runtime(card_reader=None, printer=None, backend=_Offline(), site=Site("T1", "S1", "站"), outbox=box)
    got = rt._my_filings(S.FetchMyFilings(1, S.Person(NAME, SSN, Credential.SSCARD_PIN)))
    row = next(r for r in got.rows if r.local_number == item.local_number)
    assert (row.status, row.queued) == ("returned", False) and row.reason
    assert got.offline


def test_the_fields_a_422_names_go_back_to_the_session(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", tmp_path / "o.key")
    client = FakeClient()
    client.filing_script = [BackendFailure(FailureKind.REJECTED, code="invalid_request", status=422,
                                           fields=("phone",))]
    worker = SyncWorker(box, lambda: client).start()
    rt = Runtime(card_reader=None, printer=None, backend=None, site=Site("T1", "S1", "站"), outbox=box, sync=worker)
    eff = S.SubmitFiling(1, "employment_registration", "L20261201-ABCDEF", "filing-0123456789abcdef",
                         S.Person(NAME, SSN, Credential.SSCARD_PIN), (("phone", "13912345678"),), False,
                         dt.datetime.now(dt.UTC))
    try:
        got = rt._file(eff, {})
    finally:
        worker.stop()
    assert got == S.FilingRefused(("phone",))
