"""我的办件: each filing, its number and where it stands (待上传 for the ones still in this terminal's outbox)."""

from __future__ import annotations

from kivy.metrics import dp

from screens import theme as T
from screens.base import KioskScreen
from screens.form import app_theme, grid, pair_row, scrolled


class MyFilingsScreen(KioskScreen):
    def render(self, view) -> None:
        theme = app_theme()
        box = self.ids.rows
        box.clear_widgets()
        g = grid(1, dp(18))
        for label, value in view.rows:
            g.add_widget(pair_row(label, value, theme.body, label_frac=0.55, value_bold=True, label_color=T.TEXT,
                                  label_halign="left"))
        box.add_widget(scrolled(g, panel=True))
