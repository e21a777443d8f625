"""The service catalog: what the kiosk offers and the credential level each service needs.

Decided here from data, not scattered in screens: each credential carries a level, each service
declares the level it needs.
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


def get(key: str) -> Service | None:
    return _BY_KEY.get(key)


def allowed(service: Service, level: Level) -> bool:
    return level >= service.level


def offered(level: Level) -> list[Service]:
    return [s for s in SERVICES if allowed(s, level)]
