from kivy.app import App

from screens.base import KioskScreen
from screens.pension import _cell


class NoticeScreen(KioskScreen):
    """A message with facts to read and a decision: confirm a filing, a filing accepted, a receipt checked."""

    def render(self, view) -> None:
        theme = App.get_running_app().theme  # pyright: ignore[reportOptionalMemberAccess]  # screens live inside the app
        rows = self.ids.rows
        rows.clear_widgets()
        for label, value in view.rows:
            rows.add_widget(_cell(label, theme.body, bold=False, muted=True, halign="right"))
            rows.add_widget(_cell(value, theme.body, bold=True))
