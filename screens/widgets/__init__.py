"""Shared widgets: big buttons, the tone icons, a title with its icon."""

from __future__ import annotations

from kivy.graphics import Color, Ellipse, Line, Rectangle, Triangle
from kivy.metrics import dp
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.widget import Widget

TONE_NAMES = ("info", "wait", "warn", "error", "ok", "forged")


class BigButton(Button):
    """A large touch target; `event` is what the session receives when it is released."""

    event = ObjectProperty(None, allownone=True)
    primary = BooleanProperty(False)


def buttons_for(view_buttons, on_event):
    """Make BigButtons for a view's buttons, posting their events on release."""
    out = []
    for b in view_buttons:
        w = BigButton(text=b.label, primary=b.primary)
        w.event = b.event
        w.bind(on_release=lambda btn: on_event(btn.event))
        out.append(w)
    return out


class ToneIcon(Widget):
    """The icon of a tone, drawn (no font glyph can turn into a box): each tone has its own shape, so the tone
    never depends on colour alone — info a circle with i, wait a clock, warn a triangle with !, error a circle
    with ×, ok a circle with a tick, forged a no-entry sign (a ring with a bar)."""

    tone = StringProperty("info")

    def __init__(self, **kw):
        super().__init__(**kw)
        self.bind(pos=self._draw, size=self._draw, tone=self._draw)
        self._draw()

    def _draw(self, *_a) -> None:
        from screens import theme as T

        c = self.canvas
        assert c is not None
        c.clear()
        s = min(self.width, self.height)
        if s <= 0:
            return
        x0, y0 = self.center_x - s / 2, self.center_y - s / 2
        cx, cy = self.center_x, self.center_y
        w = max(2.0, s * 0.06)  # stroke width
        tone = self.tone if self.tone in TONE_NAMES else "info"
        with c:
            Color(*T.tone_colour(tone))
            if tone == "warn":
                Triangle(points=[x0, y0 + s * 0.07, x0 + s, y0 + s * 0.07, cx, y0 + s * 0.97])
                Color(1, 1, 1, 1)
                Rectangle(pos=(cx - s * 0.05, y0 + s * 0.38), size=(s * 0.1, s * 0.34))
                Ellipse(pos=(cx - s * 0.06, y0 + s * 0.17), size=(s * 0.12, s * 0.12))
            elif tone == "forged":
                Line(circle=(cx, cy, s * 0.44), width=w * 1.3)
                Line(points=[cx - s * 0.31, cy + s * 0.31, cx + s * 0.31, cy - s * 0.31], width=w * 1.3)
            else:
                Ellipse(pos=(x0, y0), size=(s, s))
                Color(1, 1, 1, 1)
                if tone == "error":
                    d = s * 0.22
                    Line(points=[cx - d, cy - d, cx + d, cy + d], width=w)
                    Line(points=[cx - d, cy + d, cx + d, cy - d], width=w)
                elif tone == "ok":
                    Line(points=[cx - s * 0.24, cy, cx - s * 0.06, cy - s * 0.18, cx + s * 0.26, cy + s * 0.18],
                         width=w, joint="round", cap="round")
                elif tone == "wait":
                    Line(circle=(cx, cy, s * 0.32), width=w * 0.6)
                    Line(points=[cx, cy + s * 0.22, cx, cy, cx + s * 0.16, cy - s * 0.08], width=w * 0.7,
                         joint="round", cap="round")
                else:  # info
                    Rectangle(pos=(cx - s * 0.05, y0 + s * 0.2), size=(s * 0.1, s * 0.38))
                    Ellipse(pos=(cx - s * 0.07, y0 + s * 0.66), size=(s * 0.14, s * 0.14))


def natural_width(text: str, font_size: float, bold: bool) -> float:
    """Width of `text` on one line (the widest of its lines)."""
    probe = Label(text=text, font_size=font_size, bold=bold)
    probe.texture_update()
    return probe.texture_size[0]


class TitleWithIcon(BoxLayout):
    """A title with its tone's icon beside it, the pair centred (or at the left); the title wraps when long."""

    text = StringProperty("")
    tone = StringProperty("info")
    font_size = NumericProperty(dp(40))
    icon_size = NumericProperty(dp(96))
    align = StringProperty("center")  # center | left

    def __init__(self, **kw):
        super().__init__(orientation="horizontal", size_hint_y=None, **kw)
        self.spacing = dp(20)
        self._left = Widget(size_hint_x=1)
        self._icon = ToneIcon(size_hint=(None, None))
        self._label = Label(bold=True, size_hint=(None, None), halign="left", valign="middle")
        self._right = Widget(size_hint_x=1)
        for w in (self._left, self._icon, self._label, self._right):
            self.add_widget(w)
        self.bind(text=self._fit, tone=self._fit, font_size=self._fit, icon_size=self._fit, width=self._fit,
                  align=self._fit)
        self._label.bind(texture_size=self._height)
        self._fit()

    def _fit(self, *_a) -> None:
        from screens import theme as T

        self._icon.tone = self.tone
        self._icon.size = (self.icon_size, self.icon_size)
        lab = self._label
        lab.text = self.text
        lab.font_size = self.font_size
        lab.color = T.title_colour(self.tone)
        natural = natural_width(self.text, self.font_size, True) + dp(4) if self.text else 0
        room = max(dp(40), self.width - self.icon_size - self.spacing * 3)
        # a title too long to sit beside its icon goes under it, centred (not one character on a line of its own)
        stacked = self.align == "center" and natural > room
        self.orientation = "vertical" if stacked else "horizontal"
        for spacer in (self._left, self._right):
            spacer.size_hint = (1, None) if stacked else (0.001 if self.align == "left" else 1, 1)
            spacer.height = 0
        lab.width = self.width if stacked else min(room, natural)
        lab.halign = "center" if stacked else "left"
        lab.text_size = (lab.width, None)
        self._icon.pos_hint = {"center_x": 0.5} if stacked else {"center_y": 0.5}
        lab.pos_hint = {"center_x": 0.5} if stacked else {"center_y": 0.5}
        self._height()

    def _height(self, *_a) -> None:
        lab = self._label
        lab.height = lab.texture_size[1]
        if self.orientation == "vertical":
            self.height = self.icon_size + self.spacing * 3 + lab.height  # spacing: between the four children
        else:
            self.height = max(self.icon_size, lab.height)
