"""The runtime with the real kiosk.voice.Voice (fake espeak-ng and players on PATH, real processes): one prompt at
a time, the newest; a session's end silences it; the speed follows 大字模式; `kiosk voice volume N` reaches a
running kiosk.

Waits are on events (the runtime's wakeup, a FIFO the fake program opens when it starts), never on the clock.
"""

from __future__ import annotations

import os
import threading

import pytest

from kiosk import session as S
from kiosk import voice as V
from kiosk.cli import main as kiosk_main
from kiosk.cli import make_voice, session_options
from kiosk.config import load
from kiosk.i18n import tr
from kiosk.runtime import VOLUME_EVERY, Runtime, Site
from sim.fakes import FakeCardReader, FakePrinter
from tests.runtime_driver import pump_until
from tests.unit.test_config import _cfg_file, example_text, pki  # noqa: F401  (fixtures)
from tests.unit.test_runtime import NOW, WAIT, Backend
from tests.unit.test_session import CARD
from tests.unit.test_voice import _arg, fakes  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(60)

PIN_PROMPT = "请输入社保卡密码"
GREETING = "您好，请插入社保卡"
SAMPLE = "音量调好了，现在是这么大的声音"


class Kiosk:
    def __init__(self, voice, clock=None, **options) -> None:
        self.reader = FakeCardReader()
        self.woke = threading.Event()
        kw = {"clock": clock} if clock is not None else {}
        self.rt = Runtime(card_reader=self.reader, printer=FakePrinter(), backend=Backend(),
                          site=Site("T-1", "S-1", "示范镇人社服务站"), voice=voice, wall=lambda: NOW, **kw, **options)
        self.rt.wakeup = self.woke.set
        self.rt.start()

    def until(self, *screens: S.Screen) -> None:
        pump_until(self.rt, self.woke, screens, WAIT)

    def post(self, *events) -> None:
        for e in events:
            self.rt.post(e)
        self.rt.pump()

    def drain(self) -> None:
        """Every prompt queued so far has had its turn (fails if one is still speaking after WAIT)."""
        self.rt._pools["voice"].submit(lambda: None).result(WAIT)


@pytest.fixture
def kiosks():
    made: list[Kiosk] = []

    def make(*a, **kw) -> Kiosk:
        k = Kiosk(*a, **kw)
        made.append(k)
        return k

    yield make
    for k in made:
        k.rt.stop()


def _pin_prompt_plays_until_killed(install, tmp_path):
    """The PIN prompt "plays" until it is killed, and says so through the returned FIFO when it starts."""
    started = tmp_path / "started"
    os.mkfifo(started)
    install("espeak-ng", f"if {PIN_PROMPT!r} in (stdin or ''):\n"
                         f"    open({str(started)!r}, 'w').write('x')\n"
                         "    import time; time.sleep(600)")
    return started


def _said(calls) -> list[str]:
    return [c["stdin"] for c in calls() if c["prog"] == "espeak-ng"]


def test_repeat_says_the_prompt_once_and_pulling_the_card_cuts_it(fakes, kiosks, tmp_path):  # noqa: F811
    install, calls = fakes
    started = _pin_prompt_plays_until_killed(install, tmp_path)
    k = kiosks(V.Voice([]))
    k.reader.insert(CARD)
    k.until(S.Screen.PIN)
    with open(started) as f:  # the PIN prompt is playing
        assert f.read() == "x"
    gate = threading.Event()
    k.rt._pools["voice"].submit(gate.wait, WAIT)  # holds the voice worker once the playing prompt is cut
    k.post(*[S.Repeat()] * 5)  # an impatient finger: each press replaces the last
    gate.set()
    with open(started) as f:  # one repeat is playing
        assert f.read() == "x"
    k.reader.remove()  # the person leaves mid-prompt: the prompt stops, the home screen greets the next one
    k.until(S.Screen.IDLE)
    k.drain()  # returns only because the playing prompt was killed (it would speak for 600 s)
    said = [t for t in _said(calls) if t != "正在读卡，请稍候"]  # the reading prompt may be replaced unheard
    assert said == [PIN_PROMPT, PIN_PROMPT, GREETING]


def test_a_new_screen_cuts_the_last_ones_prompt_short(fakes, kiosks, tmp_path):  # noqa: F811
    install, calls = fakes
    started = _pin_prompt_plays_until_killed(install, tmp_path)
    k = kiosks(V.Voice([]))
    k.reader.insert(CARD)
    k.until(S.Screen.PIN)
    with open(started) as f:
        assert f.read() == "x"
    for d in "123456":
        k.rt.post(S.KeyDigit(d))
    k.until(S.Screen.MENU)
    k.drain()  # returns only because the PIN prompt was killed when the next screen spoke
    said = _said(calls)
    assert said.count(PIN_PROMPT) == 1 and said[-1] == tr("zh_CN", "menu.title")


def test_the_speed_follows_the_large_text_switch(fakes, kiosks):  # noqa: F811
    install, calls = fakes
    install("espeak-ng")
    k = kiosks(V.Voice([], elder=True))  # configured: elder mode
    k.reader.insert(CARD)
    k.until(S.Screen.PIN)
    k.drain()
    assert _arg(calls()[-1]["argv"], "-s") == str(V.ELDER_RATE)
    k.post(S.ToggleElderMode(), S.ConfirmShrink(True))  # 把字变小吗？ 是
    assert not k.rt.state.elder_mode
    k.post(S.Repeat())
    k.drain()
    last = calls()[-1]
    assert last["stdin"] == PIN_PROMPT
    assert (_arg(last["argv"], "-s"), _arg(last["argv"], "-p")) == (str(V.NORMAL_RATE), str(V.NORMAL_PITCH))
    k.post(S.ToggleElderMode())  # large text back on: slow again
    k.drain()
    assert _arg(calls()[-1]["argv"], "-s") == str(V.ELDER_RATE)


def test_kiosk_voice_volume_reaches_the_running_kiosk(fakes, kiosks, tmp_path, example_text, capsys):  # noqa: F811
    install, calls = fakes
    install("espeak-ng")
    path = str(_cfg_file(tmp_path, example_text))
    (tmp_path / "data").mkdir()
    cfg = load(path)
    configured = cfg.terminal.voice_volume
    opts = session_options(cfg)
    now = [0.0]
    k = kiosks(make_voice(cfg), clock=lambda: now[0], volume_file=opts["volume_file"],
               configured_volume=opts["configured_volume"], settings=opts["settings"])
    k.post(S.Tick())  # the idle screen's first attract greeting, out of the way
    k.drain()
    start = len(calls())

    def tick() -> None:
        now[0] += VOLUME_EVERY
        k.post(S.Tick())
        k.drain()

    assert kiosk_main(["voice", "volume", "--config", path, "40"]) == 0
    assert "running kiosk" in capsys.readouterr().out
    tick()
    assert k.rt.volume == 40
    sample = calls()[start:]
    assert [c["stdin"] for c in sample] == [SAMPLE]  # on the home screen the technician hears the new loudness
    assert _arg(sample[0]["argv"], "-a") == "40"

    tick()  # nothing changed: nothing said
    assert len(calls()) == start + 1

    assert kiosk_main(["voice", "volume", "--config", path, "--reset"]) == 0
    tick()
    assert k.rt.volume == configured

    assert kiosk_main(["voice", "volume", "--config", path, "40"]) == 0
    tick()
    assert k.rt.volume == 40
    (tmp_path / "data" / "voice.toml").write_text("not toml [")  # broken: the configured volume applies again
    tick()
    assert k.rt.volume == configured

    k.reader.insert(CARD)  # someone is being served: the change applies, but no test sample interrupts them
    k.until(S.Screen.PIN)
    k.drain()
    before = len(calls())
    assert kiosk_main(["voice", "volume", "--config", path, "25"]) == 0
    tick()
    assert k.rt.volume == 25
    assert SAMPLE not in [c["stdin"] for c in calls()[before:]]
    k.post(S.Repeat())
    k.drain()
    assert calls()[-1]["stdin"] == PIN_PROMPT and _arg(calls()[-1]["argv"], "-a") == "25"


def test_stopping_the_kiosk_cuts_the_prompt(fakes, tmp_path):  # noqa: F811
    install, calls = fakes
    started = _pin_prompt_plays_until_killed(install, tmp_path)
    finished = threading.Event()

    class Watched(V.Voice):
        def say(self, msgid, text, locale, **kw):
            try:
                super().say(msgid, text, locale, **kw)
            finally:
                if text == PIN_PROMPT:
                    finished.set()

    k = Kiosk(Watched([]))
    try:
        k.reader.insert(CARD)
        k.until(S.Screen.PIN)
        with open(started) as f:
            assert f.read() == "x"
    finally:
        k.rt.stop()
    assert finished.wait(WAIT)  # killed by stop(), not left speaking for 600 s
