from kivy.core.window import Window

from screens.base import KioskScreen
from screens.form import app_theme, pair_row


class NoticeScreen(KioskScreen):
    """A message with facts to read and a decision: confirm a filing, a filing accepted, a receipt checked."""

    def render(self, view) -> None:
        theme = app_theme()
        rows = self.ids.rows
        rows.clear_widgets()
        portrait = Window.height > Window.width
        for label, value in view.rows:
            rows.add_widget(pair_row(label, value, theme.body, label_frac=0.36 if portrait else 0.3, value_bold=True,
                                     compact=not portrait))
