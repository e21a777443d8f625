"""The service catalog: what the kiosk offers and the credential level each service needs.

Decided here from data, not scattered in screens: each credential carries a level, each service
declares the level it needs. Two built-in services (the pension query, and card loss for a terminal that has no
catalog yet) sit beside the backend's catalog of filings (kiosk.forms, sent in by CatalogLoaded); 我的办件 closes
the menu.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.IntEnum):
    NONE = 0
    ID_CARD = 1  # resident ID card alone: who you are, not proof you hold the social-security account
    STRONG = 2  # social-security card + PIN, or the electronic social-security card

    # an alias that reads well at the call site
    CARD_PIN = 2


@dataclass(frozen=True)
class Service:
    key: str
    title: str  # message id in the translation catalog
    level: Level
    voice: str


SERVICES: tuple[Service, ...] = (
    Service("pension_query", "service.pension_query", Level.STRONG, "service.pension_query.voice"),
    # Reporting a lost card needs only the ID card: the person has no social-security card to show.
    Service("card_loss", "service.card_loss", Level.ID_CARD, "service.card_loss.voice"),
)

_BY_KEY = {s.key: s for s in SERVICES}

MY_FILINGS = "my_filings"  # 我的办件: the person's filings and where they stand


def get(key: str) -> Service | None:
    return _BY_KEY.get(key)


def allowed(service: Service, level: Level) -> bool:
    return level >= service.level


def offered(level: Level) -> list[Service]:
    return [s for s in SERVICES if allowed(s, level)]


@dataclass(frozen=True)
class MenuEntry:
    key: str
    title: str  # a message id (built-in) or the catalog's own words
    from_catalog: bool


def menu(level: Level, catalog_services=()) -> list[MenuEntry]:
    """The menu for a credential level: the pension query, the catalog's services it reaches (the built-in card
    loss only while the catalog has none), then 我的办件. catalog_services: kiosk.forms.ServiceForm objects."""
    if level is Level.NONE:
        return []
    keys = {f.key for f in catalog_services}
    out = [MenuEntry(s.key, s.title, False) for s in offered(level) if s.key == "pension_query"]
    out += [MenuEntry(f.key, f.title, True) for f in catalog_services if level >= f.level]
    if "card_loss" not in keys:
        out += [MenuEntry(s.key, s.title, False) for s in offered(level) if s.key == "card_loss"]
    out.append(MenuEntry(MY_FILINGS, "service.my_filings", False))
    return out
