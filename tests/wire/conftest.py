"""Wire fixtures for the social-security card: a real pcscd with vpcd readers, and virtual cards.

Card tests use the second vpcd slot (port 35964, reader "Virtual PCD 00 01") so a demo card on the
first slot (35963) does not disturb them.
"""

from __future__ import annotations

import os
import time

import pytest

from sim import pcscd as pcscd_helper
from sim.personas import persona
from sim.vcard import VirtualCard

CARD_PORT = 35964
CARD_READER = "Virtual PCD 00 01"


def reader_has_card(reader: str = CARD_READER) -> bool | None:
    """pcscd's view of the slot: True / False, None if pcscd does not answer."""
    from smartcard import scard

    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return None
    try:
        hr, res = scard.SCardGetStatusChange(ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hr != scard.SCARD_S_SUCCESS:
            return None
        return bool(res[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(ctx)


def wait_for(pred, timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


class PcscdService:
    """The pcscd the tests use; `owned` if this session started it (only then may a test restart it)."""

    def __init__(self):
        self.proc = pcscd_helper.ensure_pcscd()

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def restart(self) -> None:
        self.proc = pcscd_helper.restart_pcscd(self.proc)

    def stop(self) -> None:
        pcscd_helper.stop_pcscd(self.proc)


@pytest.fixture(scope="session")
def pcscd():
    svc = PcscdService()
    yield svc
    svc.stop()


@pytest.fixture
def vcard(pcscd):
    """Factory: vcard("elder", t0_style=..., drop_after=...) → an inserted VirtualCard that pcscd sees.
    Every card is removed at teardown, and the slot is seen empty before the next test."""
    cards: list[VirtualCard] = []

    def make(p: str | dict = "elder", wait: bool = True, **kw) -> VirtualCard:
        card = VirtualCard(persona(p) if isinstance(p, str) else p, port=CARD_PORT, **kw)
        cards.append(card)
        card.insert()
        if wait:
            assert wait_for(lambda: reader_has_card() is True), "pcscd did not see the card"
        return card

    yield make
    for card in cards:
        card.remove()
    wait_for(lambda: reader_has_card() is not True)


def swap_gap() -> None:
    """Wait until pcscd has seen the slot empty (a swap faster than its polling would go unseen)."""
    wait_for(lambda: reader_has_card() is not True)


RESTART_ALLOWED = os.environ.get("KIOSK_TEST_RESTART_PCSCD") == "1"
