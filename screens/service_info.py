"""A service's page before it starts (八公开): basis, materials, steps, fee, time limit, handling, phones."""

from __future__ import annotations

from kivy.metrics import dp

from screens import theme as T
from screens.base import KioskScreen
from screens.form import app_theme, grid, landscape, pair_row, scrolled, wrap_label


class ServiceInfoScreen(KioskScreen):
    def render(self, view) -> None:
        theme = app_theme()
        box = self.ids.rows
        box.clear_widgets()
        g = grid(1, dp(12) if landscape() else theme.pad * 1.6)  # portrait: rows spaced to use the height
        for label, value in view.rows:
            if label:
                g.add_widget(pair_row(label, value, theme.body, label_frac=0.26 if landscape() else 0.3))
            else:  # a warning line of its own (online only)
                g.add_widget(wrap_label(value, theme.body, bold=True, color=T.TONES["warn"], halign="center"))
        box.add_widget(scrolled(g, panel=True))
