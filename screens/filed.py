"""A filing accepted, queued, or (online-only, not confirmed) not done: an icon and words, the number large."""

from __future__ import annotations

from screens.base import KioskScreen
from screens.form import app_theme, pair_row


class FiledScreen(KioskScreen):
    def render(self, view) -> None:
        theme = app_theme()
        self.ids.number_label.text = view.extra.get("number_label", "")
        self.ids.number.text = view.extra.get("number", "")
        rows = self.ids.rows
        rows.clear_widgets()
        for label, value in view.rows:
            rows.add_widget(pair_row(label, value, theme.body, label_frac=0.45, value_bold=True))

    def on_leave(self, *args) -> None:
        super().on_leave(*args)
        self.ids.number.text = self.ids.number_label.text = ""
