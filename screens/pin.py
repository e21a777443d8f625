import random

from kivy.app import App
from kivy.factory import Factory
from kivy.properties import BooleanProperty, NumericProperty

from kiosk import session as S
from screens.base import KioskScreen

_rng = random.SystemRandom()


class PinScreen(KioskScreen):
    """Digits as dots; the keypad may be shuffled per session against smudges and shoulder-surfing."""

    entered = NumericProperty(0)
    shuffle = BooleanProperty(False)
    _built_for = None

    def render(self, view) -> None:
        self.entered = view.pin_entered
        grid = self.ids.keypad
        if grid.children and view.extra.get("sid") == self._built_for:
            return  # one layout per session: a shuffled keypad must not move under the finger
        self._built_for = view.extra.get("sid")
        theme = App.get_running_app().theme  # pyright: ignore[reportOptionalMemberAccess]  # screens live inside the app
        digits = list("1234567890")
        if self.shuffle:
            _rng.shuffle(digits)
        grid.clear_widgets()
        keys = [(d, S.KeyDigit(d), True) for d in digits[:9]]
        keys += [(view.extra["delete"], S.KeyBackspace(), False), (digits[9], S.KeyDigit(digits[9]), True)]
        keys += [(b.label, b.event, False) for b in view.buttons]
        for text, event, is_digit in keys:
            # PinKey's kv rule sizes it from the theme (taller keys in portrait): a height passed to the
            # constructor was overridden by BigButton's rule, so portrait keys never got their size
            b = Factory.PinKey(text=text, primary=is_digit)
            b.font_size = theme.title if is_digit else theme.button_font
            b.event = event
            b.bind(on_release=lambda btn: self._post(btn.event))
            grid.add_widget(b)
