"""Logging with redaction at the logging layer: no full ID number, name or PIN reaches a log.

The filter runs on the handler, so records from every library are covered, not just ours. Log messages
are written in English; what is redacted, in this order:

- ID numbers (GB 11643): a run of exactly 18 digits (or 17 and a check X), also glued to letters
  ("id370102195203140527x"), keeps 4 + 4 digits as receipts do; a run of exactly 15 digits (the old
  numbers) the same; inside a longer run of digits, every 18-digit window that is a valid number.
- 2017 foreign permanent residence card numbers (3 letters + 12 digits).
- Names in Latin letters: the value of a name-like key ("name", any key ending in "name"/"names" such as
  english_name or holderName, "surname", "holder", "cardholder") written as key=value, key: value or a
  quoted dict/JSON/repr value, and an upper-case Latin name right after the bare word "name" or "holder"
  ("holder ZHANG San"); a [list] value is redacted whole. Keys that name a thing (file, host, reader,
  printer, logger, ...) are left alone.
- Any run of Han characters (personal data or screen text).
- PINs: digits after "pin" (also "1 2 3 4 5 6", "123-456" forms), and anywhere a group of exactly six
  digits split by spaces or dashes ("1 2 3 4 5 6", "123-456", "12 34 56"), which is how a PIN is shown.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from api.idnumber import is_valid
from api.privacy import mask_id

_RUN = re.compile(r"(?<![0-9])[0-9]{15,}[Xx]?")
_FOREIGN_ID = re.compile(r"(?<![A-Za-z])([A-Z]{3})\d{12}(?!\d)")  # 2017 foreign permanent resident card
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f·]+")

# A key that names a person. Keys that name a thing are excluded: their values help technicians.
_THINGS = (
    r"file|host|path|dir|base|module|class|func|logger|reader|device|printer|port|font|thread|process|screen"
    r"|service|tag|field|key|event|journey|app|node|table|site|column|attr|var|method|env|domain|zone"
)
_NAME_KEY = rf"\b(?!(?:{_THINGS})_?names?\b)(?:\w*name|\w*names|surname|holder|cardholder)\b"
_BREAK = r"\s,;&'\"(){}\[\]<>="  # characters that end an unquoted value word
_UNQUOTED = rf"[^{_BREAK}]+(?:,?[ \t]+(?![\w.-]+\s*[=:])[^{_BREAK}:]+)*"
_NAME_VALUE = re.compile(
    rf"(?i)(?P<key>{_NAME_KEY})(?P<kq>['\"]?)(?P<sep>[ \t]*[:=][ \t]*)"
    rf"(?:(?P<q>['\"])(?:\\.|(?!(?P=q)).)*(?P=q)|(?P<list>\[)[^\]]*\]|{_UNQUOTED})"
)
# "holder ZHANG San": no separator, so only an upper-case (passport style) surname is taken as a name
_NAME_WORD = re.compile(r"(?i:\b(?P<key>name|holder|cardholder))(?P<sep>[ \t]+)[A-Z][A-Z'-]+(?:,?[ \t]+[A-Z][A-Za-z'-]*)*")

_PIN = re.compile(r"(?i)(pin\D{0,12}?)\d(?:[ \t._-]?\d){3,11}")
_SPACED_PIN = re.compile(r"(?<![\w.-])(?=\d{1,5}[ -]\d)\d(?:[ -]?\d){5}(?!\w|[.-]\w|[ -]\d)")


def _mask_run(m: re.Match) -> str:
    run = m.group()
    digits = run.rstrip("Xx")
    n = len(digits)
    if n == 17 and len(run) == 18:  # 17 digits and a check X
        return mask_id(run)
    if n in (15, 18):  # an ID number, maybe glued to an x that is a letter
        return mask_id(digits) + run[n:]
    if n < 18:
        return run
    # a longer run: an ID glued to other digits; mask every window that is a valid ID number
    chars = list(run)
    for i in range(len(run) - 17):
        window = run[i : i + 18]
        if is_valid(window):
            chars[i + 4 : i + 14] = "*" * 10
    return "".join(chars)


def _redact_name(m: re.Match) -> str:
    groups = m.groupdict()
    q = groups.get("q") or ""
    if groups.get("list"):
        return f"{m['key']}{groups.get('kq') or ''}{m['sep']}[<redacted>]"
    return f"{m['key']}{groups.get('kq') or ''}{m['sep']}{q}<redacted>{q}"


def redact(text: str) -> str:
    text = _RUN.sub(_mask_run, text)
    text = _FOREIGN_ID.sub(r"\1************", text)
    text = _NAME_VALUE.sub(_redact_name, text)
    text = _NAME_WORD.sub(_redact_name, text)
    text = _HAN.sub("<redacted>", text)
    text = _PIN.sub(r"\1<redacted>", text)
    return _SPACED_PIN.sub("<redacted>", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            msg = f"{record.msg!r} {record.args!r}"
        record.msg = redact(msg)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Root logging for the kiosk, the CLI and the demo: stderr and optionally a file, all redacted."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(RedactingFilter())
        root.addHandler(h)
    root.setLevel(level)
