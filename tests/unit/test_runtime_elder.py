"""The runtime's side of issue 8: the help request reaches the backend (or the panel says to phone), and the
technician's volume changes the live voice, is kept for the next start and is heard at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from api.models import HelpRequestStored
from kiosk import session as S
from kiosk.backend_client import BackendFailure, FailureKind
from kiosk.config import VOLUME_FILE
from kiosk.runtime import Runtime, Site
from tests.unit.test_runtime import NOW, WAIT, Backend, FakeCardReader, FakePrinter

pytestmark = pytest.mark.timeout(60)


class HelpBackend(Backend):
    def __init__(self, answer: object) -> None:
        super().__init__()
        self.help_answer = answer
        self.helped: list[tuple[str, object]] = []

    def request_help(self, screen, created_at):
        self.helped.append((screen, created_at))
        if isinstance(self.help_answer, Exception):
            raise self.help_answer
        return self.help_answer


class LoudVoice:
    def __init__(self) -> None:
        self.volume = 100
        self.said: list[tuple[object, str, int]] = []
        self.spoke = threading.Event()

    def say(self, msgid, text, locale):
        self.said.append((msgid, text, self.volume))
        self.spoke.set()


def _runtime(backend, voice=None, volume_file=None) -> tuple[Runtime, threading.Event]:
    woke = threading.Event()
    rt = Runtime(card_reader=FakeCardReader(), printer=FakePrinter(), backend=backend,
                 site=Site("T-1", "S-1", "示范镇人社服务站"), voice=voice, wall=lambda: NOW,
                 helpdesk=S.HelpDesk((("张秀英", "13800001234"),), "12333"), volume_file=volume_file)
    rt.wakeup = woke.set
    rt.start()
    return rt, woke


def _pump_until(rt: Runtime, woke: threading.Event, cond) -> None:
    end = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < end, "timed out"
        woke.wait(0.05)
        woke.clear()
        rt.pump()


@pytest.mark.parametrize("answer, sent", [
    (HelpRequestStored(request_id="H20250310-0A1B2C3D4E"), "sent"),
    (BackendFailure(FailureKind.OFFLINE, code="offline"), "offline"),
    (RuntimeError("client bug"), "offline"),
])
def test_a_help_request_reaches_the_backend_or_the_panel_says_to_phone(answer, sent):
    backend = HelpBackend(answer)
    rt, woke = _runtime(backend)
    try:
        rt.post(S.AskHelp())
        _pump_until(rt, woke, lambda: rt.state.help_sent not in ("", "sending"))
        assert rt.state.help_sent == sent and rt.state.help_open
        assert backend.helped == [("idle", NOW)]
    finally:
        rt.stop()


def test_a_backend_without_help_requests_means_phone_directly():
    rt, woke = _runtime(Backend())
    try:
        rt.post(S.AskHelp())
        _pump_until(rt, woke, lambda: rt.state.help_sent == "offline")
    finally:
        rt.stop()


def test_set_volume_changes_the_live_voice_saves_it_and_says_a_sample(tmp_path: Path):
    voice = LoudVoice()
    (tmp_path / "data").mkdir()  # the kiosk's data_dir (make_filing_parts makes it at start)
    rt, _ = _runtime(Backend(), voice, tmp_path / "data" / VOLUME_FILE)
    try:
        assert rt.volume == 100
        assert rt.set_volume(40) is True
        assert voice.volume == 40 and rt.volume == 40
        assert (tmp_path / "data" / VOLUME_FILE).read_text().endswith("[terminal]\nvoice_volume = 40\n")
        assert voice.spoke.wait(WAIT)
        assert voice.said[-1] == (None, "音量调好了，现在是这么大的声音", 40)
        with pytest.raises(ValueError):
            rt.set_volume(101)
        assert voice.volume == 40
    finally:
        rt.stop()


def test_a_volume_that_cannot_be_saved_still_applies(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    voice = LoudVoice()
    rt, _ = _runtime(Backend(), voice, blocker / VOLUME_FILE)  # its folder is a file: cannot be made
    try:
        assert rt.set_volume(0, test=True) is False
        assert voice.volume == 0 and not voice.said  # silent: no sample
    finally:
        rt.stop()


def test_a_slider_dragged_through_many_values_says_one_sample_at_the_last_value(tmp_path: Path):
    (tmp_path / "data").mkdir()
    voice = LoudVoice()
    rt, _ = _runtime(Backend(), voice, tmp_path / "data" / VOLUME_FILE)
    gate = threading.Event()
    try:
        rt._pools["voice"].submit(gate.wait, WAIT)  # the voice is busy while the slider moves
        for v in range(50, 80, 5):
            rt.set_volume(v)
        gate.set()
        rt._pools["voice"].submit(lambda: None).result(WAIT)
        assert [(text, vol) for _, text, vol in voice.said] == [("音量调好了，现在是这么大的声音", 75)]
    finally:
        rt.stop()
