"""The offline voice: the real espeak-ng reads every Chinese prompt as Mandarin; clips, volume and failures.

The Mandarin checks run the real espeak-ng (installed by scripts/setup.sh) with -x -q: phonemes, no sound.
Player and synthesiser behaviour is checked with small fake programs on PATH that record how they were called.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import wave
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from kiosk import voice as V
from kiosk.i18n import catalog
from kiosk.speech import spoken_amount, spoken_date, spoken_digits, spoken_number

HANZI = re.compile(r"[\u3007\u4e00-\u9fff]")
# One Mandarin syllable in espeak-ng's -x output ends in its tone contour: 55, 35, 214, 21, 51, 53, 33, 11 …
TONE = re.compile(r"[1-5]{2,3}")
# What the plain `cmn` voice of espeak-ng 1.51 does with hanzi it has no entry for: switch to English and
# spell the pinyin with the tone as an English numeral (请 qing3 -> "king three": kI55NTr'i:55).
ENGLISH_SWITCH = "(en)"
ENGLISH_TONE_NUMERALS = re.compile(r"Tr'?i:|w'?0\d*n|t'?u:|f'?o@|f'?aI\d*v")

# Values a prompt is composed with, already in words as the caller passes them.
SAMPLE = {
    "n": spoken_number(2, counting=True),
    "amount": spoken_amount(Decimal("238.50")),
    "name": "李华",
    "due": spoken_date(date(2027, 3, 31)),
    "status": "待认证",
    # the filing prompts, with values as the session passes them (kiosk.speech)
    "title": "就业登记",
    "summary": "在这里登记就业",
    "question": "您的手机号码是多少",
    "answer": spoken_digits("13800001234"),
    "number": spoken_digits("20261201"),
    "phone": spoken_digits("12333"),
    "date": spoken_date(date(2026, 12, 8)),
    "reason": "材料不全",
    "help": "点返回",
    "y": spoken_number(2026), "m": spoken_number(12), "d": spoken_number(8),
    "i": spoken_number(1),
    # issue 8: the pension's balance, the help panel's volunteers and phones
    "balance": spoken_amount(Decimal("7532.40")),
    "contacts": f"张秀英，电话{spoken_digits('13800001234')}；服务站电话{spoken_digits('0531-12345678')}",
    "years": spoken_number(15, counting=True),  # the pension's years of contributions
    # a genuine receipt's details and a filing's promised day, as the session words them
    "service": "社保卡临时挂失",
    "progress": "办理进度：已办结。",
    "items": "本人居民身份证、营业执照",
    "fee": "不收费",
}


def _session_params() -> dict[str, str]:
    """The values the session really passes, from the catalog the backend serves: the loan amount's refused
    bounds (min, max) and the loan's service page (title, summary, materials, time limit, fee, phones)."""
    from dataclasses import replace

    from kiosk import forms as F
    from kiosk import session as S

    raw = json.loads((Path(__file__).resolve().parents[2] / "backend" / "services" / "catalog.json").read_text("utf-8"))
    loan = next(f for f in F.compile_catalog(raw["services"])[0] if f.key == "business_loan")
    page = replace(S.initial_state(), screen=S.Screen.SERVICE_INFO, form=loan)
    online_only = replace(page, form=replace(loan, info=loan.info.model_copy(update={"online_only": True})))
    mine = replace(S.initial_state(), screen=S.Screen.MY_FILINGS, my_filings=(
        S.FilingRow(None, "F20261201-73A750577C", "business_loan", "创业担保贷款申请", "in_progress",
                    due_date=date(2026, 12, 22)),
        S.FilingRow(None, "F2", "employment_registration", "就业登记", "returned", reason="材料不全"),
        S.FilingRow("L20261201-ABCDEF", None, "employment_registration", "就业登记", "received", queued=True),
        S.FilingRow(None, "F3", "card_loss", "社保卡临时挂失", "done"),
    ))
    return (dict(S.screen_voice(page).params) | dict(S.screen_voice(online_only).params)
            | F.spoken_error_params(loan.question("amount")) | {"rows": dict(S.screen_voice(mine).params)["rows"]})


SAMPLE |= _session_params()

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (scripts/setup.sh)")


def assert_mandarin(text: str, ph: str) -> None:
    assert ENGLISH_SWITCH not in ph, f"{text!r} switches to English: {ph}"
    assert not ENGLISH_TONE_NUMERALS.search(ph), f"{text!r} reads tone numbers in English: {ph}"
    assert len(TONE.findall(ph)) >= len(HANZI.findall(text)), f"{text!r}: a hanzi without a Mandarin syllable: {ph}"


def _prompts():
    for msgid, template in catalog("zh_CN").items():
        text = template.format(**SAMPLE)
        if HANZI.search(text):  # "English" (the language switch button) is the only value without hanzi
            yield pytest.param(text, id=msgid)


# -- the real espeak-ng ----------------------------------------------------------------------------------


@needs_espeak
def test_mandarin_voice_is_the_pinyin_one_when_listed():
    listed = V._listed_voices(shutil.which("espeak-ng"))
    assert "cmn" in listed
    assert V.espeak_voice_for("zh_CN") == ("cmn-latn-pinyin" if "cmn-latn-pinyin" in listed else "cmn")
    assert V.espeak_voice_for("en") == "en"


@needs_espeak
@pytest.mark.parametrize("text", list(_prompts()))
def test_every_chinese_prompt_is_read_as_mandarin(text):
    assert_mandarin(text, V.phonemes(text, "zh_CN"))


@needs_espeak
@pytest.mark.parametrize(
    "text",
    [
        "您需要缴纳" + spoken_amount(Decimal("1005")),
        "余额" + spoken_amount(Decimal("100000.01")),
        "请在" + spoken_date(date(2026, 10, 10)) + "前认证",
        "回执编号 " + spoken_digits("R20261201-3F2A"),
        "还可以再试" + spoken_number(2, counting=True) + "次",
    ],
)
def test_spoken_values_are_read_as_mandarin(text):
    assert_mandarin(text, V.phonemes(text, "zh_CN"))


@needs_espeak
@pytest.mark.parametrize("text", [f"好{c}好" for c in "/\\+*&%#@~=|<>_^$:;.,!?()[]'\"·—…、：／％＋-"]
                         + ["养老金上调5%", "上调 5.5 %", "办理时间 9:00~17:00", "社保卡/身份证"])
def test_symbols_are_not_said_in_english(text):
    assert_mandarin(text, V.phonemes(text, "zh_CN"))


def test_speakable_leaves_english_alone():
    assert V.speakable("Card / ID 5%", "en") == "Card / ID 5%"
    assert V.speakable("社保卡 / 身份证 5%", "zh_CN") == "社保卡 ， 身份证 百分之5"


@needs_espeak
def test_the_check_catches_the_plain_cmn_voice():
    """Characterisation: the same prompt through `-v cmn` fails every Mandarin check, so the checks above are
    not vacuous, and this is why the kiosk prefers cmn-latn-pinyin."""
    text = "请插入社保卡"
    pinyin = V.phonemes(text, "zh_CN")
    plain = subprocess.run(["espeak-ng", "-v", "cmn", "-x", "-q", "-b", "1", "--stdin"], input=text.encode(),
                           capture_output=True, timeout=10, check=True).stdout.decode()
    assert ENGLISH_SWITCH in plain and ENGLISH_TONE_NUMERALS.search(plain)
    assert pinyin.startswith("tS;h'i21N")  # 请 qǐng as a Mandarin syllable with its (half-)third tone
    assert ENGLISH_SWITCH not in pinyin


@needs_espeak
def test_letters_in_a_filing_number_are_spelled():
    ph = V.phonemes(spoken_digits("3FA2"), "zh_CN")
    assert ENGLISH_SWITCH not in ph
    assert len(TONE.findall(ph)) == 4  # 三 F A 二: FA is two letter names, not the syllable fā


@needs_espeak
def test_english_prompts_use_the_english_voice():
    assert "(en)" not in V.phonemes("Please insert your card", "en")
    assert not HANZI.search(V.phonemes("Please insert your card", "en"))


# -- fakes on PATH -----------------------------------------------------------------------------------------

FAKE = """#!{python}
import json, os, sys
argv = sys.argv[1:]
if argv and argv[0].startswith("--voices"):
    print("Pty Language       Age/Gender VoiceName          File                 Other Languages")
    print(" 5  cmn             --/M      Chinese_(Mandarin,_latin_as_English) sit/cmn   (zh-cmn 5)(zh 5)")
    {pinyin_line}
    sys.exit(0)
stdin = sys.stdin.read() if "--stdin" in argv else None
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as f:
    f.write(json.dumps({{"prog": os.path.basename(sys.argv[0]), "argv": argv, "stdin": stdin}}) + "\\n")
{behaviour}
"""


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """A PATH holding only the fakes this test installs; returns (install, calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log_file = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_LOG", str(log_file))

    def install(name: str, behaviour: str = "", *, pinyin: bool = True) -> str:
        line = 'print(" 5  cmn-latn-pinyin --/M      Chinese_(Mandarin,_latin_as_Pinyin) sit/cmn-Latn-pinyin")'
        p = bin_dir / name
        p.write_text(FAKE.format(python=sys.executable, pinyin_line=line if pinyin else "", behaviour=behaviour))
        p.chmod(0o755)
        return str(p)

    def calls() -> list[dict]:
        if not log_file.exists():
            return []
        return [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]

    return install, calls


def _clip(root: Path, locale: str, msgid: str) -> Path:
    p = root / locale / f"{msgid}.wav"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"RIFF....WAVE")  # content is the player's business
    return p


def _wav(root: Path, locale: str, msgid: str, samples: list[int]) -> Path:
    """A real 16-bit mono PCM clip holding these samples."""
    p = root / locale / f"{msgid}.wav"
    p.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(b"".join(v.to_bytes(2, "little", signed=True) for v in samples))
    return p


def _samples(data: bytes) -> list[int]:
    import io

    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
        raw = w.readframes(w.getnframes())
    return [int.from_bytes(raw[i:i + 2], "little", signed=True) for i in range(0, len(raw), 2)]


# a player that keeps what it was fed on stdin (aplay reads the WAV from stdin when given no file)
KEEP_STDIN = "open(os.environ['FAKE_LOG'] + '.stdin', 'wb').write(sys.stdin.buffer.read())"


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_a_recorded_clip_is_played_instead_of_synthesis(fakes, tmp_path):
    install, calls = fakes
    install("espeak-ng")
    player = install("fake-player")
    clip = _clip(tmp_path / "clips", "zh_CN", "idle.title")
    V.Voice([tmp_path / "clips"], player=[player, "--card", "1"]).say("idle.title", "请插入社保卡", "zh_CN")
    assert calls() == [{"prog": "fake-player", "argv": ["--card", "1", str(clip)], "stdin": None}]


def test_the_station_directory_wins_over_the_shipped_clips(fakes, tmp_path):
    install, calls = fakes
    player = install("fake-player")
    station = _clip(tmp_path / "station", "zh_CN", "idle.voice")
    _clip(tmp_path / "shipped", "zh_CN", "idle.voice")
    voice = V.Voice([tmp_path / "station", tmp_path / "shipped"], player=[player])
    assert voice.clip_for("idle.voice", "zh_CN") == station
    assert voice.clip_for("idle.voice", "en") is None  # clips are per locale


def test_without_a_clip_the_prompt_is_synthesised_slowly_for_elders(fakes, tmp_path):
    install, calls = fakes
    install("espeak-ng")
    player = install("fake-player")
    _clip(tmp_path / "clips", "en", "idle.title")  # another locale's clip does not count
    V.Voice([tmp_path / "clips"], player=[player], volume=70).say("idle.title", "请插入社保卡", "zh_CN")
    (call,) = calls()
    assert call["prog"] == "espeak-ng"
    argv = call["argv"]
    assert (_arg(argv, "-v"), _arg(argv, "-s"), _arg(argv, "-p"), _arg(argv, "-a"), _arg(argv, "-b")) == (
        "cmn-latn-pinyin", str(V.ELDER_RATE), str(V.ELDER_PITCH), "70", "1")
    assert call["stdin"] == "请插入社保卡"  # text on stdin, never as an argument
    assert V.ELDER_RATE < V.NORMAL_RATE < 175  # espeak-ng's default rate


def test_plain_cmn_when_the_pinyin_voice_is_not_listed(fakes):
    install, calls = fakes
    install("espeak-ng", pinyin=False)
    V.Voice([], elder=False).say(None, "请插入社保卡", "zh_CN")
    (call,) = calls()
    assert (_arg(call["argv"], "-v"), _arg(call["argv"], "-s")) == ("cmn", str(V.NORMAL_RATE))


def test_english_uses_the_english_voice_and_a_leading_dash_is_text(fakes):
    install, calls = fakes
    install("espeak-ng")
    V.Voice([]).say("x", "-v is not an option", "en")
    (call,) = calls()
    assert _arg(call["argv"], "-v") == "en" and call["stdin"] == "-v is not an option"


def test_a_message_with_placeholders_is_never_a_clip(fakes, tmp_path):
    install, calls = fakes
    install("espeak-ng")
    player = install("fake-player")
    assert "{" in catalog("zh_CN")["countdown"]
    _clip(tmp_path / "clips", "zh_CN", "countdown")
    V.Voice([tmp_path / "clips"], player=[player]).say("countdown", "还有三秒返回首页", "zh_CN")
    assert [c["prog"] for c in calls()] == ["espeak-ng"]


@pytest.mark.parametrize("msgid", ["../zh_CN/idle.title", "/etc/passwd", ".hidden", ""])
def test_a_message_id_is_never_a_path(fakes, tmp_path, msgid):
    _clip(tmp_path / "clips", "zh_CN", "idle.title")
    assert V.Voice([tmp_path / "clips" / "zh_CN"]).clip_for(msgid, "zh_CN") is None


def test_the_runtime_call_shape_synthesises(fakes):
    install, calls = fakes
    install("espeak-ng")
    V.Voice([])("您好", "zh_CN")  # runtime.voice(text, locale)
    assert [c["stdin"] for c in calls()] == ["您好"]


@pytest.mark.parametrize(("volume", "amplitude"), [(-5, 0), (0, 0), (1, 1), (50, 50), (100, 100), (150, 100), (72.6, 73)])
def test_volume_maps_to_espeak_amplitude(volume, amplitude):
    assert V.espeak_amplitude(volume) == amplitude


def test_volume_zero_is_silent(fakes, tmp_path):
    install, calls = fakes
    install("espeak-ng")
    player = install("fake-player")
    _clip(tmp_path / "clips", "zh_CN", "idle.title")
    voice = V.Voice([tmp_path / "clips"], player=[player], volume=0)
    voice.say("idle.title", "请插入社保卡", "zh_CN")
    voice.say("idle.voice", "您好，请插入社保卡", "zh_CN")
    assert calls() == []


@pytest.mark.parametrize(("volume", "pa"), [(100, 65536), (50, 52016), (25, 41285), (0, 0)])
def test_paplay_volume_gives_the_same_linear_factor_as_espeak(volume, pa):
    """PulseAudio's volume is cubic: 65536 * 0.5 would be an eighth of the amplitude, not a half."""
    assert V.paplay_volume(volume) == pa
    assert abs((pa / 65536) ** 3 - V.clip_gain(volume)) < 1e-4


def test_paplay_gets_the_volume_and_aplay_a_scaled_copy_as_the_fallback(fakes, tmp_path):
    install, calls = fakes
    install("paplay", "sys.exit(1)  # no PulseAudio server")
    install("aplay", KEEP_STDIN)
    install("espeak-ng")
    clip = _wav(tmp_path / "clips", "zh_CN", "idle.title", [1000, -2000, 30000, -32768])
    V.Voice([tmp_path / "clips"], volume=50).say("idle.title", "请插入社保卡", "zh_CN")
    assert [(c["prog"], c["argv"]) for c in calls()] == [
        ("paplay", [f"--volume={V.paplay_volume(50)}", str(clip)]),
        ("aplay", ["-q"]),  # no file: the WAV comes on stdin
    ]
    fed = (tmp_path / "calls.jsonl.stdin").read_bytes()
    assert _samples(fed) == [500, -1000, 15000, -16384]  # half the amplitude, same format


def test_at_full_volume_aplay_plays_the_file_itself(fakes, tmp_path):
    install, calls = fakes
    install("aplay")
    clip = _wav(tmp_path / "clips", "zh_CN", "idle.title", [1000])
    V.Voice([tmp_path / "clips"], volume=100).say("idle.title", "请插入社保卡", "zh_CN")
    assert [(c["prog"], c["argv"]) for c in calls()] == [("aplay", ["-q", str(clip)])]


def test_a_clip_the_kiosk_cannot_scale_is_given_to_aplay_as_it_is(fakes, tmp_path, caplog):
    install, calls = fakes
    install("aplay")
    clip = _clip(tmp_path / "clips", "zh_CN", "idle.title")  # not a WAV the standard library reads
    with caplog.at_level(logging.WARNING, logger="kiosk.voice"):
        V.Voice([tmp_path / "clips"], volume=40).say("idle.title", "请插入社保卡", "zh_CN")
    assert [(c["prog"], c["argv"]) for c in calls()] == [("aplay", ["-q", str(clip)])]
    assert "own level" in caplog.records[0].getMessage()


def test_a_clip_that_no_player_can_play_is_synthesised(fakes, tmp_path, caplog):
    """A corrupt clip (or a broken player) must never leave the prompt silent."""
    install, calls = fakes
    install("paplay", "sys.exit(1)  # paplay: Failed to open audio file")
    install("aplay", "sys.exit(1)  # aplay: read error")
    install("espeak-ng")
    _wav(tmp_path / "clips", "zh_CN", "idle.title", [1000])
    voice = V.Voice([tmp_path / "clips"], volume=100, elder=True)
    with caplog.at_level(logging.WARNING, logger="kiosk.voice"):
        voice.say("idle.title", "请插入社保卡", "zh_CN")
        voice.say("idle.title", "请插入社保卡", "zh_CN")
    progs = [c["prog"] for c in calls()]
    assert progs == ["paplay", "aplay", "espeak-ng"] * 2
    assert [c["stdin"] for c in calls() if c["prog"] == "espeak-ng"] == ["请插入社保卡"] * 2
    assert any("synthesised instead" in r.getMessage() for r in caplog.records)
    assert len(caplog.records) == len({r.getMessage() for r in caplog.records})  # each warned once


def test_a_failing_custom_player_falls_back_to_synthesis(fakes, tmp_path):
    install, calls = fakes
    player = install("fake-player", "sys.exit(2)")
    install("espeak-ng")
    _clip(tmp_path / "clips", "zh_CN", "idle.title")
    V.Voice([tmp_path / "clips"], player=[player]).say("idle.title", "请插入社保卡", "zh_CN")
    assert [c["prog"] for c in calls()] == ["fake-player", "espeak-ng"]


def test_a_clip_without_any_player_is_synthesised_and_warned_once(fakes, tmp_path, caplog):
    install, calls = fakes
    install("espeak-ng")
    _clip(tmp_path / "clips", "zh_CN", "idle.title")
    voice = V.Voice([tmp_path / "clips"])
    with caplog.at_level(logging.WARNING, logger="kiosk.voice"):
        voice.say("idle.title", "请插入社保卡", "zh_CN")
        voice.say("idle.title", "请插入社保卡", "zh_CN")
    assert [(c["prog"], c["stdin"]) for c in calls()] == [("espeak-ng", "请插入社保卡")] * 2
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_the_speed_follows_the_mode_of_each_prompt(fakes):
    install, calls = fakes
    install("espeak-ng")
    voice = V.Voice([], elder=True)
    voice.say(None, "您好", "zh_CN")
    voice.say(None, "您好", "zh_CN", elder=False)
    voice.say(None, "您好", "zh_CN", elder=True)
    assert [(_arg(c["argv"], "-s"), _arg(c["argv"], "-p")) for c in calls()] == [
        (str(V.ELDER_RATE), str(V.ELDER_PITCH)), (str(V.NORMAL_RATE), str(V.NORMAL_PITCH)),
        (str(V.ELDER_RATE), str(V.ELDER_PITCH))]
    fixed = V.Voice([], rate=150, pitch=45)  # a station's own speed wins over the mode
    assert fixed.speed(True) == fixed.speed(False) == (150, 45)


def test_a_prompt_asked_for_before_stop_is_never_said(fakes):
    install, calls = fakes
    install("espeak-ng")
    voice = V.Voice([])
    old = voice.stop()
    new = voice.stop()  # a newer prompt came, or the session ended
    voice.say(None, "旧的提示", "zh_CN", turn=old)
    voice.say(None, "新的提示", "zh_CN", turn=new)
    voice.say(None, "直接调用", "zh_CN")  # no turn: the current one
    assert [c["stdin"] for c in calls()] == ["新的提示", "直接调用"]


def test_missing_espeak_never_raises_and_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no espeak-ng, no player
    voice = V.Voice([])
    with caplog.at_level(logging.WARNING, logger="kiosk.voice"):
        assert voice.say("idle.title", "请插入社保卡", "zh_CN") is None
        voice("您好", "zh_CN")
        voice.say("idle.voice", "您好", "en")
    assert len(caplog.records) == 1 and "espeak-ng not installed" in caplog.records[0].getMessage()
    with pytest.raises(V.VoiceUnavailable):
        V.phonemes("您好", "zh_CN")


def test_no_audio_device_is_warned_once(fakes, caplog):
    """espeak-ng exits 0 when ALSA has no card and only complains on stderr."""
    install, calls = fakes
    install("espeak-ng", "print(\"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM default\", file=sys.stderr)")
    voice = V.Voice([])
    with caplog.at_level(logging.WARNING, logger="kiosk.voice"):
        voice.say("idle.title", "请插入社保卡", "zh_CN")
        voice.say("idle.voice", "您好", "zh_CN")
    assert len(calls()) == 2
    (record,) = caplog.records
    assert "no audio device" in record.getMessage() and "Unknown PCM default" in record.getMessage()
    assert "请" not in record.getMessage()  # the spoken text never reaches the log


def test_an_unexpected_error_never_raises(fakes, monkeypatch, caplog):
    install, calls = fakes
    install("espeak-ng")

    def boom(*a, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(V.subprocess, "Popen", boom)
    with caplog.at_level(logging.WARNING, logger="kiosk.voice"):
        V.Voice([]).say("idle.title", "请插入社保卡", "zh_CN")
    assert caplog.records


def test_a_hung_player_is_cut_off(fakes, tmp_path, caplog):
    install, calls = fakes
    player = install("fake-player", "import time; time.sleep(600)")
    _clip(tmp_path / "clips", "zh_CN", "idle.title")
    with caplog.at_level(logging.WARNING, logger="kiosk.voice"):
        V.Voice([tmp_path / "clips"], player=[player], timeout=0.5).say("idle.title", "请插入社保卡", "zh_CN")
    assert "cut off" in caplog.records[0].getMessage()


def test_stop_cuts_the_prompt_short(fakes, tmp_path):
    install, calls = fakes
    install("espeak-ng")
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    player = install("fake-player", f"open({str(fifo)!r}, 'w').write('x')\nimport time; time.sleep(600)")
    _clip(tmp_path / "clips", "zh_CN", "idle.title")
    voice = V.Voice([tmp_path / "clips"], player=[player])
    t = threading.Thread(target=voice.say, args=("idle.title", "请插入社保卡", "zh_CN"))
    t.start()
    with open(fifo) as f:  # returns once the player is running
        assert f.read() == "x"
    voice.stop()
    t.join(timeout=30)
    assert not t.is_alive()
    assert [c["prog"] for c in calls()] == ["fake-player"]  # cut short, not failed: nothing synthesised instead


@needs_espeak
def test_diagnostics_command_prints_voice_and_phonemes(capsys):
    assert V.main(["请插入社保卡"]) == 0
    assert capsys.readouterr().out.startswith(V.espeak_voice_for("zh_CN") + " ")


def test_diagnostics_command_without_espeak(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert V.main(["您好"]) == 1
    assert "not found" in capsys.readouterr().out
