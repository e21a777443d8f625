"""Logging with redaction at the logging layer: no full ID number, name or PIN reaches a log.

Log messages are written in English, so any run of Han characters in a record is personal data or a
screen text and is replaced; 18-character ID numbers are masked; digits after 'pin' are dropped.
The filter runs on the handler, so records from every library are covered, not just ours.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

_ID = re.compile(r"(?<!\d)(\d{4})\d{10}(\d{3}[\dXx])(?![0-9A-Za-z])")
_FOREIGN_ID = re.compile(r"(?<![A-Za-z])([A-Z]{3})\d{12}(?!\d)")  # 2017 foreign permanent resident card
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f·]+")
_PIN = re.compile(r"(?i)(pin\D{0,12}?)\d{4,12}")


def redact(text: str) -> str:
    text = _ID.sub(r"\1**********\2", text)
    text = _FOREIGN_ID.sub(r"\1************", text)
    text = _HAN.sub("<redacted>", text)
    return _PIN.sub(r"\1<redacted>", text)


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
