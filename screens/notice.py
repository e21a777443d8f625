from kivy.core.window import Window

from screens.base import KioskScreen
from screens.form import app_theme, pair_row


class NoticeScreen(KioskScreen):
    """A message with facts to read and a decision: confirm a filing, a filing accepted, a receipt checked."""

    def render(self, view) -> None:
        theme = app_theme()
        rows = self.ids.rows
        rows.clear_widgets()
        frac = 0.36 if Window.height > Window.width else 0.3
        for label, value in view.rows:
            rows.add_widget(pair_row(label, value, theme.body, label_frac=frac, value_bold=True))
