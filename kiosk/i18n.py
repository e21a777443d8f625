"""The one translation layer: every user-facing string is looked up here by message id.

Catalogs are JSON files under assets/i18n (one per locale, same keys: a test checks it). Plain JSON
rather than gettext .po/.mo because the kiosk ships no build step and ids are stable keys, not English.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

LOCALES = ("zh_CN", "en")
DEFAULT = "zh_CN"
CATALOG_DIR = Path(__file__).resolve().parent.parent / "assets" / "i18n"

log = logging.getLogger(__name__)


@cache
def catalog(locale: str) -> dict[str, str]:
    return json.loads((CATALOG_DIR / f"{locale}.json").read_text(encoding="utf-8"))


def tr(locale: str, msgid: str, **kw) -> str:
    """Translate; a missing id falls back to Chinese, then to the id itself (visible, never a crash)."""
    for loc in (locale if locale in LOCALES else DEFAULT, DEFAULT):
        text = catalog(loc).get(msgid)
        if text is not None:
            try:
                return text.format(**kw) if kw else text
            except (KeyError, IndexError, ValueError):
                log.warning("message %s in %s has placeholders that do not match", msgid, loc)
                return text
    log.warning("missing message id %s", msgid)
    return msgid
