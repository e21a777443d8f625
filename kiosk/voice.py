"""Offline voice prompts: a station's recorded clip when there is one, espeak-ng otherwise.

A prompt is (msgid, text, locale). A clip <clips dir>/<locale>/<msgid>.wav (a station's own directory first, then
the clips shipped in assets/voice) is played with paplay or aplay; any other prompt is synthesised by espeak-ng
with a Mandarin voice that reads hanzi as Mandarin (see `espeak_voice_for`). Values inside a prompt arrive
already in words (kiosk.speech), so the synthesiser never has to guess how to read "238.50".

Speaking is a comfort, not a step of the transaction: `Voice.say` never raises, and a missing espeak-ng, player
or audio device is logged once as a warning, then the kiosk stays silent. The spoken text is never logged (a
greeting carries the person's name); only message ids are.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

CLIPS_DIR = Path(__file__).resolve().parent.parent / "assets" / "voice"
ESPEAK = "espeak-ng"
PHONEME_TIMEOUT = 10.0
SPEAK_TIMEOUT = 60.0  # the longest prompt at the elder rate takes ~15 s; a hung audio device must not block forever

# espeak-ng's default is 175 words per minute and pitch 50. Older listeners follow a slower voice better, and a
# lower pitch stays audible with age-related high-frequency hearing loss.
ELDER_RATE, ELDER_PITCH = 130, 40
NORMAL_RATE, NORMAL_PITCH = 160, 50

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a msgid or locale used as a file name: no paths


# Symbols the Mandarin voices read as English words ("/" -> "slash", "+" -> "plus"): said in Chinese, or a pause.
_ZH_SYMBOLS = str.maketrans({"+": "加", "=": "等于", "&": "和", "~": "至", "/": "，", "\\": "，", "*": "，", "#": "，",
                             "@": "，"})
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*[%％]")


def speakable(text: str, locale: str) -> str:
    """The text as the synthesiser should get it: for Mandarin, no symbol is left for it to say in English
    (a label such as "扫码（电子社保卡 / 回执）" would otherwise be read with an English "slash")."""
    if locale.lower().startswith("en"):
        return text
    text = _PERCENT.sub(r"百分之\1", text)  # 5% is said 百分之五: the unit comes first
    return text.replace("%", "").translate(_ZH_SYMBOLS)


class VoiceUnavailable(RuntimeError):
    """espeak-ng is missing or failed (raised by `phonemes` only; `Voice.say` never raises)."""


@cache
def _listed_voices(exe: str) -> frozenset[str]:
    """The voice names espeak-ng knows for Mandarin (column 2 of `--voices=cmn`), lower-case."""
    try:
        out = subprocess.run([exe, "--voices=cmn"], capture_output=True, timeout=PHONEME_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names = set()
    for line in out.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 2:
            names.add(cols[1].lower())
    return frozenset(names)


def espeak_voice_for(locale: str, exe: str = ESPEAK) -> str:
    """The espeak-ng voice for a kiosk locale.

    Mandarin is `cmn-latn-pinyin` where espeak-ng has it: the plain `cmn` voice of espeak-ng 1.51 reads most hanzi
    as pinyin spelled out in English with the tone as an English numeral (请 -> "king three"), while
    `cmn-latn-pinyin` reads them as Mandarin syllables with tones (请 -> tS;h'i21N).
    """
    if locale.lower().startswith("en"):
        return "en"
    return "cmn-latn-pinyin" if "cmn-latn-pinyin" in _listed_voices(exe) else "cmn"


def espeak_amplitude(volume: int | float) -> int:
    """Kiosk volume 0-100 -> espeak-ng -a. 100 is espeak's own default amplitude: louder than that clips and
    distorts, so the station's loudness belongs to the mixer and the speakers; this only turns prompts down."""
    return round(min(100.0, max(0.0, float(volume))))


def phonemes(text: str, locale: str, *, exe: str = ESPEAK, timeout: float = PHONEME_TIMEOUT) -> str:
    """What the kiosk would say, as espeak-ng's phoneme mnemonics (`espeak-ng -v VOICE -x -q`), without sound.

    For tests and diagnostics. Raises VoiceUnavailable when espeak-ng is missing, fails or times out.
    """
    path = shutil.which(exe)
    if path is None:
        raise VoiceUnavailable(f"{exe} not found")
    argv = [path, "-v", espeak_voice_for(locale, path), "-x", "-q", "-b", "1", "--stdin"]
    try:
        out = subprocess.run(argv, input=speakable(text, locale).encode("utf-8"), capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise VoiceUnavailable(f"{exe} failed: {e}") from e
    if out.returncode != 0:
        raise VoiceUnavailable(f"{exe} exited {out.returncode}: {_last_line(out.stderr)}")
    return out.stdout.decode("utf-8", "replace").strip()


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""


class Voice:
    """Speaks prompts offline. Call `say(msgid, text, locale)` from a worker thread (it blocks while speaking).

    clips_dirs: where recorded clips are looked up, first match wins (a station's directory before the shipped
      one). player: an argv prefix that plays a WAV file given as the last argument; default paplay, then aplay.
    volume: 0-100 (0 is silent). elder: slower and lower voice; rate/pitch override it (espeak-ng units).
    """

    def __init__(
        self,
        clips_dirs: Iterable[str | Path] = (CLIPS_DIR,),
        *,
        volume: int | float = 100,
        elder: bool = True,
        rate: int | None = None,
        pitch: int | None = None,
        espeak: str = ESPEAK,
        player: Sequence[str] | None = None,
        timeout: float = SPEAK_TIMEOUT,
    ) -> None:
        self.clips_dirs = [Path(d) for d in clips_dirs]
        self.volume = volume
        self.rate = rate if rate is not None else (ELDER_RATE if elder else NORMAL_RATE)
        self.pitch = pitch if pitch is not None else (ELDER_PITCH if elder else NORMAL_PITCH)
        self.espeak = espeak
        self.player = list(player) if player is not None else None
        self.timeout = timeout
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._stopped = False

    # -- the runtime's callable shape: voice(text, locale); no msgid means no clip
    def __call__(self, text: str, locale: str, msgid: str | None = None) -> None:
        self.say(msgid, text, locale)

    def say(self, msgid: str | None, text: str, locale: str) -> None:
        """Play the clip for msgid if one is recorded, else synthesise text. Never raises."""
        try:
            self._stopped = False
            if espeak_amplitude(self.volume) == 0:
                return
            clip = self.clip_for(msgid, locale) if msgid else None
            if clip is not None:
                self._play(clip, msgid or "-")
            elif text.strip():
                self._synthesise(text, locale, msgid or "-")
        except Exception:
            self._warn_once("unexpected", "voice prompt %s failed", msgid, exc_info=True)

    def stop(self) -> None:
        """Cut the prompt being spoken short (the person moved on). Safe from any thread."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def clip_for(self, msgid: str, locale: str) -> Path | None:
        """The recorded clip for this message, or None. A message with {placeholders} is never a clip: the
        recording could not say the values, so it is always synthesised."""
        if not (_SAFE_NAME.fullmatch(msgid) and _SAFE_NAME.fullmatch(locale)):
            return None
        if "{" in _template(locale, msgid):
            return None
        for d in self.clips_dirs:
            path = d / locale / f"{msgid}.wav"
            if path.is_file():
                return path
        return None

    # -- internals
    def _play(self, clip: Path, msgid: str) -> None:
        candidates = [self.player] if self.player is not None else self._system_players()
        if not candidates:
            self._warn_once("no-player", "no audio player (paplay or aplay) for recorded clip %s: silent", msgid)
            return
        for argv in candidates:
            if self._run([*argv, str(clip)], None, f"player {Path(argv[0]).name}", msgid):
                return

    def _system_players(self) -> list[list[str]]:
        out = []
        if paplay := shutil.which("paplay"):  # PulseAudio/PipeWire: scales the clip to the kiosk volume
            out.append([paplay, f"--volume={round(espeak_amplitude(self.volume) / 100 * 65536)}"])
        if aplay := shutil.which("aplay"):  # plain ALSA: the clip's own level
            out.append([aplay, "-q"])
        return out

    def _synthesise(self, text: str, locale: str, msgid: str) -> None:
        exe = shutil.which(self.espeak)
        if exe is None:
            self._warn_once("no-espeak", "%s not installed: voice prompts are silent", self.espeak)
            return
        argv = [
            exe, "-v", espeak_voice_for(locale, exe), "-s", str(self.rate), "-p", str(self.pitch),
            "-a", str(espeak_amplitude(self.volume)),
            "-b", "1",  # the text is UTF-8 whatever the service's locale (LANG=C would garble hanzi)
            "--stdin",  # not argv: a prompt starting with "-" must not read as an option
        ]
        self._run(argv, speakable(text, locale).encode("utf-8"), "espeak-ng", msgid)

    def _run(self, argv: list[str], stdin: bytes | None, what: str, msgid: str) -> bool:
        """Run one speaking process to the end; True when it spoke. Failures are warned once per program."""
        with self._lock:
            if self._stopped:
                return True
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except OSError as e:
                self._warn_once(f"start:{what}", "%s could not start: %s", what, e)
                return False
            self._proc = proc
        try:
            _, err = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            self._warn_once(f"timeout:{what}", "%s took longer than %ss on %s: cut off", what, self.timeout, msgid)
            return True  # it was speaking: playing it again elsewhere would repeat the prompt
        finally:
            with self._lock:
                self._proc = None
        if self._stopped:
            return True
        # espeak-ng exits 0 even when it cannot open the audio device; it only says so on stderr.
        if proc.returncode != 0 or (what == "espeak-ng" and err.strip()):
            self._warn_once(f"fail:{what}", "%s could not speak %s (no audio device?): exit %s, %s",
                            what, msgid, proc.returncode, _last_line(err))
            return False
        return True

    def _warn_once(self, key: str, msg: str, *args, exc_info: bool = False) -> None:
        if key in self._warned:
            log.debug(msg, *args)
            return
        self._warned.add(key)
        log.warning(msg, *args, exc_info=exc_info)


def _template(locale: str, msgid: str) -> str:
    """The catalog text of a message ("" when unknown: a station may record prompts of its own)."""
    from kiosk.i18n import catalog  # late: voice stays usable without the catalogs (diagnostics, tests)

    try:
        return catalog(locale).get(msgid, "")
    except (OSError, ValueError):
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Diagnostics on a station: `python -m kiosk.voice [--locale en] [--say] TEXT` prints the voice and phonemes."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m kiosk.voice", description=main.__doc__)
    ap.add_argument("text")
    ap.add_argument("--locale", default="zh_CN")
    ap.add_argument("--say", action="store_true", help="also speak it through the audio device")
    args = ap.parse_args(argv)
    try:
        print(espeak_voice_for(args.locale), phonemes(args.text, args.locale))
    except VoiceUnavailable as e:
        print(e)
        return 1
    if args.say:
        logging.basicConfig(level=logging.WARNING)
        Voice().say(None, args.text, args.locale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
