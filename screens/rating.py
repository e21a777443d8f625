"""满意 / 基本满意 / 不满意 after a filing, then a reason under 不满意: one tap each, no typing."""

from __future__ import annotations

from kivy.metrics import dp

from screens.base import KioskScreen
from screens.form import app_theme, big_button, grid, landscape


class RatingScreen(KioskScreen):
    def render(self, view) -> None:
        theme = app_theme()
        box = self.ids.choices
        box.clear_widgets()
        choices = view.extra.get("choices", ())
        cols = (3 if len(choices) in (3, 5, 6) else 2) if landscape() else 1
        g = grid(cols, theme.pad * 0.6)
        for b in choices:
            # portrait: one column of tall answers that use the height
            font = theme.title if len(choices) <= 3 else theme.button_font  # reasons: longer words, more of them
            g.add_widget(big_button(b, self._post, font=font, grow=True,
                                    min_h=0 if landscape() else _portrait_h(theme, len(choices))))
        g.bind(height=lambda _g, h: setattr(box, "height", h))
        box.add_widget(g)

    def on_leave(self, *args) -> None:
        super().on_leave(*args)
        self.ids.choices.clear_widgets()


def _portrait_h(theme, n: int) -> float:
    """Portrait answers use the height: the three answers at least 260 dp, the five reasons 170 dp, in either type size."""
    return max(theme.button_h * 1.5, dp(260)) if n <= 4 else max(theme.button_h * 1.1, dp(170))
