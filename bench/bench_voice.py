"""Bench: how soon a resident hears a prompt, and how soon a prompt stops when the next one replaces it.

espeak-ng is run exactly as the kiosk runs it (kiosk.voice: the Mandarin voice, elder speed, UTF-8 on stdin) but
writing its WAV to a pipe (--stdout) instead of the sound card, so the figures are the synthesis alone:
- first audio: from starting the process to the first bytes of sound (what the resident waits for);
- whole prompt: the time to synthesise all of it, next to the prompt's own spoken length;
- cut-off: Voice.stop() while a prompt plays (a fake endless player) until the process is gone.

References: a reply within about 0.2 s is heard as immediate (the usual figure for conversational turn-taking);
a prompt that takes longer to make than to say would stutter; a cut-off should be well under the 0.2 s too, or
the last person's amounts would still be heard by the next one.

    PYTHONPATH=. python bench/bench_voice.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from bench._common import summary, table
from kiosk import voice as V
from kiosk.i18n import tr
from kiosk.speech import spoken_amount, spoken_date, spoken_digits

# the prompts a resident hears most, with values as the session passes them
PROMPTS = {
    "idle greeting": tr("zh_CN", "idle.voice"),
    "PIN": tr("zh_CN", "pin.title"),
    "pension (amounts, a date)": tr(
        "zh_CN", "pension.voice.receiving.cert", amount=spoken_amount(Decimal("238.50")), years="十五",
        balance=spoken_amount(Decimal("7532.40")), status="已认证", due=spoken_date(date(2027, 3, 31))),
    "filed (a number)": tr("zh_CN", "filed.accepted.voice", number=spoken_digits("F20261201-73A750577C"),
                           due="承诺在二〇二六年十二月八日前办结。"),
}


def synth(exe: str, text: str, voice: V.Voice) -> tuple[float, float, float]:
    """(first audio s, whole s, spoken length s) for one prompt, as the kiosk would say it in elder mode."""
    rate, pitch = voice.speed(True)
    argv = [exe, "-v", V.espeak_voice_for("zh_CN", exe), "-s", str(rate), "-p", str(pitch), "-b", "1", "--stdin",
            "--stdout"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(V.speakable(text, "zh_CN").encode("utf-8"))
    proc.stdin.close()
    header = proc.stdout.read(44)  # the WAV header comes before any sound
    first = proc.stdout.read(1024)
    t_first = time.perf_counter() - t0
    rest = proc.stdout.read()
    proc.wait()
    whole = time.perf_counter() - t0
    audio = len(first) + len(rest)
    rate_hz = int.from_bytes(header[24:28], "little") or 22050
    return t_first, whole, audio / 2 / rate_hz  # 16-bit mono


def cut_off(rounds: int) -> list[float]:
    """Voice.stop() while an endless 'espeak-ng' plays: seconds until its process has gone."""
    out = []
    with tempfile.TemporaryDirectory() as d:
        fake = Path(d) / "espeak-ng"
        pidfile = Path(d) / "pid"
        # answers the voice listing like espeak-ng, then "speaks" until it is killed
        fake.write_text("#!/bin/sh\ncase \"$1\" in --voices*) echo 'Pty Language Age/Gender VoiceName'; "
                        "echo ' 5 cmn M cmn-latn-pinyin'; exit 0;; esac\n"
                        f"echo $$ > {pidfile}\nexec sleep 600\n")
        fake.chmod(0o755)
        v = V.Voice([], espeak=str(fake))
        for _ in range(rounds):
            pidfile.unlink(missing_ok=True)
            t = threading.Thread(target=v.say, args=(None, "测试", "zh_CN"), daemon=True)
            t.start()
            while not pidfile.exists() or not pidfile.read_text().strip():
                time.sleep(0.005)  # the fake has no other ready signal
            pid = int(pidfile.read_text())
            t0 = time.perf_counter()
            v.stop()
            t.join(5)
            while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
                time.sleep(0.001)
            out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    exe = shutil.which("espeak-ng")
    if exe is None:
        print("espeak-ng is not installed (scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    voice = V.Voice([])
    rows = []
    for name, text in PROMPTS.items():
        firsts, wholes, lengths = [], [], []
        for _ in range(args.rounds):
            a, b, c = synth(exe, text, voice)
            firsts.append(a)
            wholes.append(b)
            lengths.append(c)
        f, w = summary(firsts, 1000), summary(wholes, 1000)
        rows.append([name, f"{f['median']:.0f}", f"{f['p90']:.0f}", f"{w['median']:.0f}",
                     f"{lengths[0]:.1f}", "first audio <= 200 ms; making < saying"])
    print(table(f"espeak-ng {V.espeak_voice_for('zh_CN', exe)}, elder speed, {os.cpu_count()} cores",
                ["prompt", "first ms", "p90", "whole ms", "said s", "reference"], rows))
    c = summary(cut_off(args.rounds), 1000)
    print()
    print(table("Voice.stop() while a prompt plays",
                ["", "median ms", "max ms", "reference"],
                [["process gone", f"{c['median']:.1f}", f"{c['max']:.1f}", "<= 200 ms (the next person)"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
