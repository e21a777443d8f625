"""All sizes and colours in one place, in dp/sp, so both orientations and elder mode scale together.

Floors (issue 8, stricter than MIIT 适老化通用设计规范 2021): every text role in elder mode at least 1.5x its
standard size and never under 26 sp; touch targets at least 120 dp in elder mode, 60 dp in standard; text and
background at least 4.5:1. Portrait terminals have height to spare: there every role grows by PORTRAIT (same
ratio between the modes), so the type and the rows use the height instead of leaving it empty.
"""

from __future__ import annotations

from kivy.event import EventDispatcher
from kivy.metrics import dp, sp
from kivy.properties import BooleanProperty, NumericProperty

# (normal, elder), landscape
SIZES = {
    "title": (30, 46),  # sp
    "figure": (28, 42),  # sp: the key figure of a result screen (每月领取, the filing number): below the title only
    "body": (20, 30),  # sp
    "button_font": (24, 36),  # sp
    "small": (18, 28),  # sp: the top bar, the payment history's months; elder mode has no smaller text
    "button_h": (100, 124),  # dp
    "bar_h": (72, 136),  # dp: the top bar (its buttons are full-size targets)
    "key": (104, 128),  # dp: PIN keypad keys
    "pad": (24, 28),  # dp
    "icon": (96, 120),  # dp: the tone icon beside a title
}
DP_ROLES = frozenset({"button_h", "bar_h", "key", "pad", "icon"})
# portrait multipliers (both modes alike, so the elder/standard ratios hold in portrait too)
PORTRAIT = {"title": 1.2, "figure": 1.35, "body": 1.2, "button_font": 1.15, "small": 1.15, "button_h": 1.3,
            "key": 1.3, "pad": 1.15, "icon": 1.6, "bar_h": 1.0}

# dark text on a warm light background: 16.8:1; white on the blues and the red: ≥ 6:1
BG = (0.969, 0.961, 0.937, 1)
PANEL = (1, 1, 1, 1)  # the card a screen's content sits on
TEXT = (0.102, 0.102, 0.102, 1)
MUTED = (0.22, 0.22, 0.22, 1)
PRIMARY = (0.043, 0.361, 0.678, 1)  # #0B5CAD
PRIMARY_TEXT = (1, 1, 1, 1)
SECONDARY = (1, 1, 1, 1)
SECONDARY_TEXT = TEXT
BORDER = (0.35, 0.35, 0.35, 1)
TONES = {
    "info": (0.043, 0.361, 0.678, 1),
    "wait": (0.043, 0.361, 0.678, 1),
    "warn": (0.60, 0.33, 0.0, 1),  # #995400: white text 5.6:1
    "error": (0.702, 0.149, 0.118, 1),  # #B3261E
    "ok": (0.09, 0.42, 0.18, 1),  # #176B2E: white text 6.5:1
    "forged": (0.702, 0.149, 0.118, 1),
}
COUNTDOWN_BG = (0.60, 0.33, 0.0, 1)


def tone_colour(tone: str):
    return TONES.get(tone, PRIMARY)


def title_colour(tone: str):
    """Title text by tone: the tone's colour for the ones that need attention (with an icon beside, never alone)."""
    return TONES[tone] if tone in ("warn", "error", "forged", "ok") else TEXT


class Theme(EventDispatcher):
    elder = BooleanProperty(True)
    portrait = BooleanProperty(False)
    title = NumericProperty(0)
    figure = NumericProperty(0)
    body = NumericProperty(0)
    button_font = NumericProperty(0)
    small = NumericProperty(0)
    button_h = NumericProperty(0)
    bar_h = NumericProperty(0)
    key = NumericProperty(0)
    pad = NumericProperty(0)
    icon = NumericProperty(0)

    def __init__(self, **kw):
        super().__init__(**kw)
        self.bind(elder=lambda *_: self._apply(), portrait=lambda *_: self._apply())
        self._apply()

    def _apply(self) -> None:
        i = 1 if self.elder else 0
        for name, pair in SIZES.items():
            unit = dp if name in DP_ROLES else sp
            scale = PORTRAIT.get(name, 1.0) if self.portrait else 1.0
            setattr(self, name, unit(pair[i] * scale))
