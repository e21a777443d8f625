"""All sizes and colours in one place, in dp/sp, so both orientations and elder mode scale together.

Floors from MIIT 适老化通用设计规范 (2021) and the project design (docs/architecture.md): elder mode title ≥ 30, body ≥ 18, touch
targets ≥ 60×60 dp (we aim for about twice that), contrast ≥ 4.5:1.
"""

from __future__ import annotations

from kivy.event import EventDispatcher
from kivy.metrics import dp, sp
from kivy.properties import BooleanProperty, NumericProperty

# (normal, elder)
SIZES = {
    "title": (34, 46),  # sp
    "body": (24, 30),  # sp
    "button_font": (28, 36),  # sp
    "small": (18, 22),  # sp: the top bar and the countdown, never the main message
    "button_h": (100, 124),  # dp
    "key": (104, 128),  # dp: PIN keypad keys
    "pad": (24, 28),  # dp
}

# dark text on a warm light background: 16.8:1; white on the blues and the red: ≥ 6:1
BG = (0.969, 0.961, 0.937, 1)
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
}
COUNTDOWN_BG = (0.60, 0.33, 0.0, 1)


class Theme(EventDispatcher):
    elder = BooleanProperty(True)
    title = NumericProperty(0)
    body = NumericProperty(0)
    button_font = NumericProperty(0)
    small = NumericProperty(0)
    button_h = NumericProperty(0)
    key = NumericProperty(0)
    pad = NumericProperty(0)

    def __init__(self, **kw):
        super().__init__(**kw)
        self.bind(elder=lambda *_: self._apply())
        self._apply()

    def _apply(self) -> None:
        i = 1 if self.elder else 0
        for name, pair in SIZES.items():
            unit = dp if name in ("button_h", "key", "pad") else sp
            setattr(self, name, unit(pair[i]))
