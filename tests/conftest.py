"""Session-wide guard: no full ID number, name or PIN of a demo person reaches a log during the test run.

Every record our own loggers emit (kiosk, devices, backend, screens) is checked *before* redaction, so the
guard proves the code does not hand personal data to the logger at all; the redacting handler is the second
line. Log files written by subprocesses (the demo, the CLI) are registered with `log_files` and scanned too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUR_LOGGERS = ("kiosk", "devices", "backend", "screens")


def _secrets() -> set[str]:
    out: set[str] = set()
    for rel in ("assets/demo/personas.json", "assets/demo/idcards.json"):
        p = ROOT / rel
        if not p.exists():
            continue
        data = json.loads(p.read_text(encoding="utf-8"))
        people = data.get("cards") or data.get("idcards") or data.get("personas") or []
        if isinstance(data, list):
            people = data
        for person in people:
            for key in ("name", "ssn", "id_number", "pin", "chinese_name", "english_name"):
                v = person.get(key)
                if isinstance(v, str) and len(v) >= 2:
                    out.add(v)
    return out


SECRETS = _secrets()
_leaks: list[str] = []
_files: list[Path] = []


class _Guard(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(OUR_LOGGERS):
            return
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        for s in SECRETS:
            if s in text:
                _leaks.append(f"{record.name}: {s[:1]}… in {record.msg!r}")


@pytest.fixture(scope="session", autouse=True)
def _personal_data_guard():
    h = _Guard(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(h)
    old = root.level
    root.setLevel(min(old, logging.INFO) or logging.INFO)
    yield
    root.removeHandler(h)
    root.setLevel(old)


@pytest.fixture(scope="session")
def log_files():
    """Register log files written by subprocesses; they are scanned at the end of the session."""
    return _files


def pytest_sessionfinish(session, exitstatus):
    for f in _files:
        if f.exists():
            text = f.read_text(encoding="utf-8", errors="replace")
            _leaks.extend(f"{f.name}: {s[:1]}…" for s in SECRETS if s in text)
    if _leaks:
        print("\nPERSONAL DATA IN LOGS:\n  " + "\n  ".join(sorted(set(_leaks))[:50]))
        session.exitstatus = 1

