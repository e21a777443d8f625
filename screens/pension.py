from kivy.app import App
from kivy.uix.label import Label

from screens.base import KioskScreen


class PensionScreen(KioskScreen):
    """Pension and contribution status as label/value rows, the last payments beside them."""

    def render(self, view) -> None:
        theme = App.get_running_app().theme  # pyright: ignore[reportOptionalMemberAccess]  # screens live inside the app
        rows, pays = self.ids.rows, self.ids.payments
        rows.clear_widgets()
        pays.clear_widgets()
        for label, value in view.rows:
            rows.add_widget(_cell(label, theme.body, bold=False, muted=True, halign="right"))
            rows.add_widget(_cell(value, theme.body, bold=True))
        self.ids.payments_title.text = view.extra.get("payments_title", "") if view.payments else ""
        for month, amount in view.payments:
            pays.add_widget(_cell(month, theme.small, bold=False, muted=True, halign="right"))
            pays.add_widget(_cell(amount, theme.small, bold=False))


def _cell(text, size, bold, muted=False, halign="left"):
    from screens import theme

    w = Label(text=str(text), font_size=size, bold=bold, halign=halign, valign="middle", size_hint_y=None)
    w.color = theme.MUTED if muted else theme.TEXT
    w.bind(width=lambda inst, v: setattr(inst, "text_size", (v, None)))
    w.bind(texture_size=lambda inst, v: setattr(inst, "height", max(v[1], size * 1.5)))
    return w
