"""The runtime with in-memory fakes: effects run on workers and come back through the one queue."""

from __future__ import annotations

import time
from dataclasses import dataclass

from devices.base import PaperStatus
from kiosk import session as S
from kiosk.runtime import Runtime, Site
from sim.fakes import FakeCardReader, FakePrinter
from tests.unit.test_session import CARD


@dataclass(frozen=True)
class Record:
    receipt_id: str = "R1"
    verify_url: str = "https://127.0.0.1/v1/receipts/R1/verify?sig=x"


class Backend:
    def __init__(self, crash: bool = False) -> None:
        self.crash = crash

    def pension(self, ssn):
        if self.crash:
            raise RuntimeError("driver bug")
        from kiosk.backend_client import BackendFailure, FailureKind

        return BackendFailure(FailureKind.NOT_FOUND, code="no_record")

    def create_receipt(self, **kw):
        return Record()


def _until(rt: Runtime, screen: S.Screen, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rt.pump()
        if rt.state.screen is screen:
            return
        time.sleep(0.01)
    raise AssertionError(f"still on {rt.state.screen}, wanted {screen}")


def _to_pension(rt: Runtime, reader: FakeCardReader) -> None:
    reader.insert(CARD)
    _until(rt, S.Screen.PIN)
    for d in "123456":
        rt.post(S.KeyDigit(d))
    _until(rt, S.Screen.MENU)
    rt.post(S.Choose("pension_query"))


def _runtime(backend, printer=None, voice=None):
    reader = FakeCardReader()
    rt = Runtime(card_reader=reader, printer=printer or FakePrinter(), backend=backend,
                 site=Site("T-1", "S-1", "示范镇人社服务站"), voice=voice)
    rt.start()
    return rt, reader


def test_journey_through_the_queue_prints_a_receipt():
    printer = FakePrinter()
    rt, reader = _runtime(Backend(), printer)
    try:
        _to_pension(rt, reader)
        _until(rt, S.Screen.PENSION)  # no record: an answer, shown in plain words
        rt.post(S.PrintRequested())
        _until(rt, S.Screen.TAKE_CARD)
        assert len(printer.printed) == 1 and "王*兰".encode("gb18030") in printer.printed[0]
        reader.remove()
        _until(rt, S.Screen.IDLE)
    finally:
        rt.stop()


def test_a_crashing_worker_becomes_a_failure_screen():
    rt, reader = _runtime(Backend(crash=True))
    try:
        _to_pension(rt, reader)
        _until(rt, S.Screen.ERROR)
        assert rt.state.fault is S.Fault.BACKEND_ERROR
    finally:
        rt.stop()


def test_paper_out_shows_the_qr_on_screen():
    rt, reader = _runtime(Backend(), FakePrinter(PaperStatus.OUT))
    try:
        _to_pension(rt, reader)
        _until(rt, S.Screen.PENSION)
        rt.post(S.PrintRequested())
        _until(rt, S.Screen.SHOW_QR)
        assert rt.state.receipt_url.endswith("sig=x")
    finally:
        rt.stop()


def test_stale_voice_prompts_are_dropped():
    said: list[str] = []

    def slow_voice(text, locale):
        said.append(text)
        time.sleep(0.3)

    rt, reader = _runtime(Backend(), voice=slow_voice)
    try:
        reader.insert(CARD)  # speaks "reading", then "PIN" right after: the first is still playing
        _until(rt, S.Screen.PIN)
        reader.remove()
        _until(rt, S.Screen.IDLE)
        time.sleep(0.8)
        assert "请输入社保卡密码" not in said  # its turn came after the person had left
    finally:
        rt.stop()
