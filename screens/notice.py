from kivy.core.window import Window
from kivy.uix.widget import Widget

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
        # portrait, nothing but the verdict and its words (a forged receipt): they sit a third of the way down
        # the card, not stuck to its top above an empty card (a widget only then: a spacer costs a gap)
        card = self.ids.card
        top = getattr(self, "_top", None)
        if portrait and not view.rows:
            if top is None:
                self._top = Widget(size_hint_y=0.5)
                card.add_widget(self._top, index=len(card.children))
        elif top is not None:
            card.remove_widget(top)
            self._top = None
