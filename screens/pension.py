from kivy.app import App
from kivy.core.window import Window
from kivy.factory import Factory

from screens.base import KioskScreen
from screens.form import pair_row


class PensionScreen(KioskScreen):
    """Pension and contribution status: 每月领取 as the key figure, the other facts as label/value rows, the
    payment history as a table (beside them in landscape, below them in portrait)."""

    def render(self, view) -> None:
        from kiosk.i18n import tr

        theme = App.get_running_app().theme  # pyright: ignore[reportOptionalMemberAccess]  # screens live inside the app
        portrait = Window.height > Window.width
        rows, pays = self.ids.rows, self.ids.payments
        rows.clear_widgets()
        pays.clear_widgets()
        key = tr(view.locale, "pension.monthly")
        figure = next(((label, value) for label, value in view.rows if label == key), None)
        self.ids.figure_label.text, self.ids.figure.text = figure or ("", "")
        for label, value in view.rows:
            if (label, value) != figure:
                rows.add_widget(pair_row(label, value, theme.body, label_frac=0.4 if portrait else 0.36,
                                         value_bold=True, compact=not portrait))
        self.ids.payments_title.text = view.extra.get("payments_title", "") if view.payments else ""
        # no history (no record yet): the facts take the whole width instead of wrapping in half of it
        self.ids.payments_box.size_hint_x = 1 if view.payments else 0
        size = theme.body if portrait else theme.small
        per_row = 1 if portrait else 2
        for i, (month, amount) in enumerate(view.payments):
            band = (i // per_row) % 2 == 0
            for text, bold, muted in ((month, False, True), (amount, True, False)):
                pays.add_widget(_payment_cell(text, size, bold, muted, band))

    def on_leave(self, *args) -> None:
        super().on_leave(*args)
        self.ids.figure.text = self.ids.figure_label.text = ""


def _payment_cell(text, size, bold, muted, band):
    from screens import theme

    w = Factory.PaymentCell(text=str(text), font_size=size, bold=bold)
    w.band = band
    w.color = theme.MUTED if muted else theme.TEXT
    w.bind(texture_size=lambda inst, v: setattr(inst, "height", max(v[1], size * 1.6)))
    w.height = size * 1.6
    return w
