"""The signature pad: a finger writes on a white box; 重写 clears it; 完成 sends the strokes as a PNG
(black on white, trimmed to the ink) with Attach(png, "image/png"). Nothing is sent while the box is empty:
the screen says so in words instead.

The view gives the title, body and any buttons of its own (返回); 重写 and 完成 are the screen's: they act on
the strokes, which only the screen has.
"""

from __future__ import annotations

from kivy.graphics import Color, InstructionGroup, Line
from kivy.metrics import dp
from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.widget import Widget

from kiosk import session as S
from screens.base import KioskScreen
from screens.capture import t
from screens.widgets import BigButton

MAX_POINTS = 20_000  # a long scribble is still a signature; memory stays bounded
PNG = "image/png"


class SignaturePad(Widget):
    """Strokes in pad coordinates (pixels from the pad's lower left), drawn as Kivy Lines."""

    empty = BooleanProperty(True)
    placeholder = StringProperty("")
    pen = NumericProperty(0)  # Line width in px (Kivy draws about twice this thick)

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pen = dp(2.5)
        self.strokes: list[list[tuple[float, float]]] = []
        self._ink = InstructionGroup()
        self.canvas.after.add(self._ink)  # pyright: ignore[reportOptionalMemberAccess]  (a widget has a canvas)
        self._points = 0
        self.bind(pos=self._redraw, size=self._redraw)

    def clear(self) -> None:
        self.strokes = []
        self._points = 0
        self._ink.clear()
        self.empty = True

    def on_touch_down(self, touch):
        if not self.collide_point(*touch.pos):
            return super().on_touch_down(touch)
        touch.grab(self)
        stroke = [(touch.x - self.x, touch.y - self.y)]
        self.strokes.append(stroke)
        self._points += 1
        self._ink.add(Color(0, 0, 0, 1))
        line = Line(points=[touch.x, touch.y], width=self.pen, cap="round", joint="round")
        self._ink.add(line)
        touch.ud[self] = (stroke, line)
        self.empty = False
        return True

    def on_touch_move(self, touch):
        if touch.grab_current is not self or self not in touch.ud:
            return super().on_touch_move(touch)
        stroke, line = touch.ud[self]
        x = min(max(touch.x, self.x), self.right)  # a finger that slides off the box draws along its edge
        y = min(max(touch.y, self.y), self.top)
        px, py = stroke[-1]
        if abs(x - self.x - px) + abs(y - self.y - py) < 1.5 or self._points >= MAX_POINTS:
            return True
        stroke.append((x - self.x, y - self.y))
        self._points += 1
        line.points = line.points + [x, y]
        return True

    def on_touch_up(self, touch):
        if touch.grab_current is self:
            touch.ungrab(self)
            touch.ud.pop(self, None)
            return True
        return super().on_touch_up(touch)

    def _redraw(self, *_a) -> None:
        """The pad moved (rotation, layout): draw the same strokes at its new place."""
        self._ink.clear()
        for stroke in self.strokes:
            self._ink.add(Color(0, 0, 0, 1))
            pts = [c for (x, y) in stroke for c in (x + self.x, y + self.y)]
            self._ink.add(Line(points=pts, width=self.pen, cap="round", joint="round"))

    def png(self) -> bytes:
        """The strokes as a trimmed PNG, or b"" when there are none."""
        from devices.photo import signature_png

        return signature_png(self.strokes, width=self.pen * 2)


class SignatureScreen(KioskScreen):
    warning = StringProperty("")  # 还没有签名: words, not only a colour
    _empty_text = ""

    def on_kv_post(self, base_widget) -> None:
        # the first stroke answers 还没有签名: the warning goes with it
        self.ids.pad.bind(empty=lambda _pad, empty: setattr(self, "warning", "") if not empty else None)

    def render(self, view) -> None:
        loc = view.locale
        if not view.title:
            self.title = t(loc, "signature.title")
            self.body = t(loc, "signature.body")
        self.warning = ""
        labels = (view.extra or {}).get("labels") or {}

        def word(key: str) -> str:
            return labels.get(key) or t(loc, f"signature.{key}" if key in ("placeholder", "empty") else
                                        f"signature.btn.{key}")

        self._empty_text = word("empty")
        pad = self.ids.pad
        pad.placeholder = word("placeholder")
        box = self.ids.buttons
        clear = BigButton(text=word("clear"))
        clear.bind(on_release=lambda *_: self.clear())
        done = BigButton(text=word("done"), primary=True)
        done.bind(on_release=lambda *_: self.done())
        box.add_widget(clear)
        box.add_widget(done)

    def clear(self) -> None:
        self.ids.pad.clear()
        self.warning = ""

    def done(self) -> bytes:
        """Send the signature; returns the PNG bytes (b"" when the pad is empty and nothing was sent)."""
        data = self.ids.pad.png()
        if not data:
            self.warning = self._empty_text or t(self.view.locale if self.view else "zh_CN", "signature.empty")
            return b""
        self._post(S.Attach(data, PNG))
        return data

    def on_leave(self, *args) -> None:
        super().on_leave(*args)
        self.ids.pad.clear()  # a signature is personal: it does not wait in a hidden screen
        self.warning = ""
