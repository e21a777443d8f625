"""Fictional demo people (assets/demo/personas.json), shared by the card twin and the reference backend."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "assets" / "demo" / "personas.json"


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict, ...]:
    with open(path, encoding="utf-8") as f:
        return tuple(json.load(f)["cards"])


def load_personas(path: str | Path | None = None) -> list[dict]:
    """All personas, as fresh dicts (callers may mutate their copy)."""
    return copy.deepcopy(list(_load(str(path or DEFAULT_PATH))))


def persona(key: str, path: str | Path | None = None) -> dict:
    """One persona by its key; KeyError if there is none."""
    for p in load_personas(path):
        if p["key"] == key:
            return p
    raise KeyError(key)
