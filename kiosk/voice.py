"""Offline voice prompts: a station's recorded clip when there is one, espeak-ng otherwise.

A prompt is (msgid, text, locale). A clip <clips dir>/<locale>/<msgid>.wav (a station's own directory first, then
the clips shipped in assets/voice) is played with paplay or aplay; any other prompt, and any clip that could not
be played (corrupt file, failing or missing player), is synthesised by espeak-ng with a Mandarin voice that reads
hanzi as Mandarin (see `espeak_voice_for`). Values inside a prompt arrive already in words (kiosk.speech), so the
synthesiser never has to guess how to read "238.50".

One prompt at a time, the newest: `stop()` cuts the prompt being spoken and cancels every `say` asked before it
(the runtime stops the voice before each new prompt and when a session ends), so 再听一遍 pressed five times says
the prompt once, and a pension amount is never read out to the next person at the screen.

Speaking is a comfort, not a step of the transaction: `Voice.say` never raises, and a missing espeak-ng, player
or audio device is logged once as a warning, then the kiosk stays silent. The spoken text is never logged (a
greeting carries the person's name); only message ids are.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import threading
import wave
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


def clip_gain(volume: int | float) -> float:
    """Kiosk volume 0-100 -> the linear factor a recorded clip's samples are scaled by: the same loudness
    step as espeak-ng's -a (volume 50 is half the amplitude of the clip as recorded)."""
    return espeak_amplitude(volume) / 100


def paplay_volume(volume: int | float) -> int:
    """Kiosk volume -> paplay --volume. PulseAudio's software volume is cubic (65536 * 0.5 is an eighth of the
    amplitude), so the cube root gives the same linear factor as `clip_gain`."""
    return round(65536 * clip_gain(volume) ** (1 / 3))


def scaled_wav(path: Path, gain: float) -> bytes | None:
    """The clip as WAV bytes with its samples scaled by gain (0..1), or None when this is not a PCM WAV the
    standard library reads (e.g. 24-bit or WAVE_FORMAT_EXTENSIBLE): then the player gets the file as it is."""
    import numpy as np  # late: only a clip played by aplay below full volume needs it

    try:
        with wave.open(str(path), "rb") as w:
            params = w.getparams()
            frames = w.readframes(params.nframes)
    except (wave.Error, EOFError, OSError):
        return None
    kinds = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}
    if params.comptype != "NONE" or params.sampwidth not in kinds:
        return None
    samples = np.frombuffer(frames[: len(frames) - len(frames) % params.sampwidth], dtype=kinds[params.sampwidth])
    if params.sampwidth == 1:  # 8-bit WAV is unsigned around 128
        out = ((samples.astype(np.float32) - 128) * gain + 128).round().astype(np.uint8)
    else:
        out = (samples.astype(np.float64) * gain).round().astype(samples.dtype)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setparams(params)
        w.writeframes(out.tobytes())
    return buf.getvalue()


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
      one). player: an argv prefix that plays a WAV file given as the last argument, at the clip's own level;
      default paplay (scaled to the volume), then aplay (fed a copy scaled to the volume).
    volume: 0-100 (0 is silent). elder: slower and lower voice by default; `say(..., elder=)` overrides it per
      prompt (the kiosk's 大字模式 can be switched off and on). rate/pitch fix them whatever the mode
      (espeak-ng units).
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
        self.elder = elder
        self._rate, self._pitch = rate, pitch
        self.espeak = espeak
        self.player = list(player) if player is not None else None
        self.timeout = timeout
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._turn = 0  # bumped by stop(): a say() of an older turn never starts a process

    def speed(self, elder: bool | None = None) -> tuple[int, int]:
        """(rate, pitch) for a prompt in elder mode or not (None: the voice's own default)."""
        slow = self.elder if elder is None else elder
        return (self._rate if self._rate is not None else (ELDER_RATE if slow else NORMAL_RATE),
                self._pitch if self._pitch is not None else (ELDER_PITCH if slow else NORMAL_PITCH))

    @property
    def rate(self) -> int:
        return self.speed()[0]

    @property
    def pitch(self) -> int:
        return self.speed()[1]

    # -- the runtime's callable shape: voice(text, locale); no msgid means no clip
    def __call__(self, text: str, locale: str, msgid: str | None = None) -> None:
        self.say(msgid, text, locale)

    def say(self, msgid: str | None, text: str, locale: str, *, elder: bool | None = None,
            turn: int | None = None) -> None:
        """Play the clip for msgid if one is recorded and plays, else synthesise text. Never raises.

        elder: this prompt's mode (None: the voice's default). turn: the value `stop()` returned when this
        prompt was asked for; a later stop() cancels it (None: the turn current now)."""
        try:
            if turn is None:
                turn = self._turn
            if espeak_amplitude(self.volume) == 0:
                return
            clip = self.clip_for(msgid, locale) if msgid else None
            if clip is not None and self._play(clip, msgid or "-", turn):
                return
            if text.strip():
                self._synthesise(text, locale, msgid or "-", turn, elder)
        except Exception:
            self._warn_once("unexpected", "voice prompt %s failed", msgid, exc_info=True)

    def stop(self) -> int:
        """Cut the prompt being spoken short and cancel every say() asked before now (the person moved on, or a
        newer prompt replaces it). Safe from any thread. Returns the new turn, for the next say()."""
        with self._lock:
            self._turn += 1
            turn, proc = self._turn, self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        return turn

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
    def _play(self, clip: Path, msgid: str, turn: int) -> bool:
        """Play the clip; True when it played (or was cut short), False when no player could: the caller
        then synthesises the text, so a broken clip or player never leaves a prompt silent."""
        if self.player is not None:
            if self._run([*self.player, str(clip)], None, f"player {Path(self.player[0]).name}", msgid, turn):
                return True
        else:
            players = 0
            if paplay := shutil.which("paplay"):  # PulseAudio/PipeWire: scales the clip itself
                players += 1
                argv = [paplay, f"--volume={paplay_volume(self.volume)}", str(clip)]
                if self._run(argv, None, "player paplay", msgid, turn):
                    return True
            if aplay := shutil.which("aplay"):  # plain ALSA has no volume of its own: feed it a scaled copy
                players += 1
                gain = clip_gain(self.volume)
                data = scaled_wav(clip, gain) if gain < 1 else None
                if gain < 1 and data is None:
                    self._warn_once(f"unscaled:{msgid}", "clip %s is not a plain PCM WAV: aplay plays it at its "
                                    "own level, whatever the volume", msgid)
                argv = [aplay, "-q"] if data is not None else [aplay, "-q", str(clip)]  # no file: stdin
                if self._run(argv, data, "player aplay", msgid, turn):
                    return True
            if not players:
                self._warn_once("no-player", "no audio player (paplay or aplay) for recorded clips: synthesised")
                return False
        self._warn_once(f"clip:{msgid}", "recorded clip %s could not be played: synthesised instead", msgid)
        return False

    def _synthesise(self, text: str, locale: str, msgid: str, turn: int, elder: bool | None = None) -> None:
        exe = shutil.which(self.espeak)
        if exe is None:
            self._warn_once("no-espeak", "%s not installed: voice prompts are silent", self.espeak)
            return
        rate, pitch = self.speed(elder)
        argv = [
            exe, "-v", espeak_voice_for(locale, exe), "-s", str(rate), "-p", str(pitch),
            "-a", str(espeak_amplitude(self.volume)),
            "-b", "1",  # the text is UTF-8 whatever the service's locale (LANG=C would garble hanzi)
            "--stdin",  # not argv: a prompt starting with "-" must not read as an option
        ]
        self._run(argv, speakable(text, locale).encode("utf-8"), "espeak-ng", msgid, turn)

    def _run(self, argv: list[str], stdin: bytes | None, what: str, msgid: str, turn: int) -> bool:
        """Run one speaking process to the end; True when it spoke or was cancelled (nothing else may speak in
        its place). Failures are warned once per program."""
        with self._lock:
            if turn != self._turn:
                return True  # cancelled before it started
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
        if turn != self._turn:
            return True  # cut short by stop(): killed, not failed
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
