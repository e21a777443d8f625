"""What this credential allows, as big tiles (the session decides which), in a list that scrolls when there are
more than fit; the way out (结束办理) stays fixed below it, beside a line that says the list goes on."""

from __future__ import annotations

import math

from kivy.animation import Animation
from kivy.app import App
from kivy.metrics import dp
from kivy.properties import NumericProperty, StringProperty
from kivy.uix.label import Label

from screens.base import KioskScreen


def _theme():
    app = App.get_running_app()
    assert app is not None, "screens live in the running app"
    return app.theme  # pyright: ignore[reportAttributeAccessIssue]  (KioskApp's own attribute)


class ScrollCue(Label):
    """The "more below" words; a tap on them scrolls a page (a swipe does too)."""

    __events__ = ("on_tap",)

    def on_touch_down(self, touch):
        if self.text and self.collide_point(*touch.pos):
            self.dispatch("on_tap")
            return True
        return super().on_touch_down(touch)

    def on_tap(self) -> None:
        pass


class MenuScreen(KioskScreen):
    more = StringProperty("")  # the cue under the tiles: empty while every tile is in view
    cols = NumericProperty(3)
    row_h = NumericProperty(dp(124))

    def on_kv_post(self, base_widget) -> None:
        sv, grid = self.ids.scroller, self.ids.services
        sv.bind(scroll_y=self._cue, height=self._cue)
        grid.bind(height=self._cue)
        self.bind(size=self._fit)
        sv.bind(height=self._fit)
        _theme().bind(button_h=self._fit)

    def _fit(self, *_a) -> None:
        """Columns and tile height: three across in landscape, two in portrait (one when there are only a few,
        wide tiles are easier); tiles never lower than the theme's button, and taller while the list has room
        (portrait's height is there to use), so the list scrolls only when it must."""
        n = len(self.ids.services.children)
        landscape = self.width > self.height
        self.cols = 3 if landscape else (2 if n > 4 else 1)
        floor = _theme().button_h
        rows = max(1, math.ceil(n / self.cols))
        gap = self.ids.services.spacing[1]
        room = (self.ids.scroller.height - gap * (rows - 1)) / rows
        cap = 1.2 if landscape else (1.8 if self.cols > 1 else 2.0)
        self.row_h = min(max(floor, room), floor * cap)

    def render(self, view) -> None:
        tiles, bottom = self.ids.services, self.ids.buttons
        tiles.clear_widgets()
        for b in [b for b in bottom.children if b.primary][::-1]:
            bottom.remove_widget(b)
            b.size_hint_y = 1  # a tile fills its row (_fit sets the row height)
            tiles.add_widget(b)
        self._fit()
        Animation.cancel_all(self.ids.scroller, "scroll_y")
        self.ids.scroller.scroll_y = 1  # a new menu starts at its first tile
        self._cue()

    def _hidden(self) -> float:
        """Height of the tiles that do not fit the list's viewport."""
        return self.ids.services.height - self.ids.scroller.height

    def _cue(self, *_a) -> None:
        from kiosk.i18n import tr

        if self.view is None or self._hidden() <= 1:
            self.more = ""
            return
        below = self.ids.scroller.scroll_y > 0.01
        self.more = tr(self.view.locale, "menu.more" if below else "menu.more_above")

    def page(self) -> None:
        """A tap on the cue: down by most of a viewport, or back to the top from the bottom."""
        sv, hidden = self.ids.scroller, self._hidden()
        if hidden <= 1:
            return
        if sv.scroll_y <= 0.01:
            target = 1.0
        else:
            target = max(0.0, sv.scroll_y - sv.height * 0.8 / hidden)
        Animation.cancel_all(sv, "scroll_y")
        Animation(scroll_y=target, d=0.25, t="out_quad").start(sv)
