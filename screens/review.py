"""The whole filing in large type before 确认提交: each answer a tappable row (Edit), what the credential gave shown
but not tappable."""

from __future__ import annotations

from kivy.metrics import dp
from kivy.properties import StringProperty
from kivy.utils import escape_markup

from kiosk import view as V
from screens import theme as T
from screens.base import KioskScreen
from screens.form import app_theme, big_button, grid, landscape, scrolled, wrap_label


def _hex(rgba) -> str:
    return "".join(f"{round(c * 255):02x}" for c in rgba[:3])


class ReviewScreen(KioskScreen):
    error = StringProperty("")
    service = StringProperty("")

    def render(self, view) -> None:
        theme = app_theme()
        x = view.extra
        self.error = x.get("error", "")
        self.service = x.get("service", "")
        box = self.ids.rows
        box.clear_widgets()
        g = grid(1, dp(10))
        # landscape: label and answer on one line, so the whole filing fits; portrait has the height for two
        sep = "　　" if landscape() else "\n"
        for label, value, event in x.get("items", ()):
            text = f"[color={_hex(T.MUTED)}]{escape_markup(label)}[/color]{sep}[b]{escape_markup(value)}[/b]"
            if event is None:
                w = wrap_label(f"{text}  [color={_hex(T.MUTED)}]（{escape_markup(x.get('prefilled', ''))}）[/color]",
                               theme.body)
                w.markup = True
                w.padding = (dp(18), dp(8))
            else:
                w = big_button(V.Button(text, event), self._post, font=theme.body, halign="left", grow=True)
                w.markup = True
                w.padding = (dp(18), dp(8))
            g.add_widget(w)
        box.add_widget(scrolled(g, panel=bool(x.get("items"))))  # no answers: no empty card

    def on_leave(self, *args) -> None:
        super().on_leave(*args)
        self.error = self.service = ""
