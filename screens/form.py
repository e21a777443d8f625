"""One question a screen: big choice buttons, 是/否, a date picker of steppers, the big keypad, a pick list filtered
by pinyin initials. The view (kiosk.view) says what is on it and which event each button sends; this screen only
lays it out. Attachments (document, face, signature) have screens of their own (capture, signature).
"""

from __future__ import annotations

from kivy.app import App
from kivy.core.window import Window
from kivy.metrics import dp
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

from screens import theme as T
from screens.base import KioskScreen
from screens.widgets import BigButton


def app_theme():
    return App.get_running_app().theme  # pyright: ignore[reportOptionalMemberAccess]  # screens live inside the app


def wrap_label(text: str, size: float, *, bold: bool = False, color=T.TEXT, halign: str = "left", min_h: float = 0,
               line_height: float = 1.25):
    """A label that wraps to its width and is as tall as its text (never cut, never spilling)."""
    w = Label(text=str(text), font_size=size, bold=bold, halign=halign, valign="middle", size_hint_y=None,
              color=color, line_height=line_height)
    w.bind(width=lambda inst, v: setattr(inst, "text_size", (v, None)))
    w.bind(texture_size=lambda inst, v: setattr(inst, "height", max(v[1], min_h or size * 1.4)))
    return w


def big_button(b, post, *, font=None, halign="center", grow: bool = False, min_h: float = 0):
    """A BigButton for a view Button; grow: as tall as its wrapped text needs (review rows, long options), and at
    least min_h (a portrait screen has the height for bigger targets)."""
    w = BigButton(text=b.label, primary=b.primary)
    w.event = b.event
    if font is not None:
        w.font_size = font
    w.halign = halign
    w.bind(on_release=lambda btn: post(btn.event))
    if grow:
        theme = app_theme()
        floor = max(theme.button_h, min_h)
        w.height = floor
        w.bind(texture_size=lambda inst, v: setattr(inst, "height", max(floor, v[1] + dp(28))))
    return w


def pair_row(label: str, value: str, size: float, *, label_frac: float = 0.3, value_bold: bool = False,
             label_color=T.MUTED, label_halign: str = "right", compact: bool = False):
    """A label beside its value, both aligned with the value's first line (never centred on a long value);
    compact: closer lines (landscape facts that must fit the height)."""
    row = BoxLayout(orientation="horizontal", size_hint_y=None, spacing=dp(20))
    lh, min_h = (1.05, size * 1.25) if compact else (1.25, 0)
    lab = wrap_label(label, size, color=label_color, halign=label_halign, line_height=lh, min_h=min_h)
    val = wrap_label(value, size, bold=value_bold, line_height=lh, min_h=min_h)
    lab.size_hint_x, val.size_hint_x = label_frac, 1 - label_frac
    lab.pos_hint = val.pos_hint = {"top": 1}
    lab.valign = val.valign = "top"  # the label beside the value's first line, however many lines it has

    def fit(*_a):
        row.height = max(lab.height, val.height)

    lab.bind(height=fit)
    val.bind(height=fit)
    row.add_widget(lab)
    row.add_widget(val)
    return row


def scrolled(child, *, panel: bool = False) -> ScrollView:
    """A list that scrolls; panel: on a white card in portrait (the list's area reads as one thing, and the
    height it is given is visibly the list's, not empty screen)."""
    sv = ScrollView(do_scroll_x=False, bar_width=dp(14), bar_color=T.BORDER, bar_inactive_color=T.BORDER,
                    scroll_type=["bars", "content"])
    if panel and not landscape():
        from kivy.graphics import Color, RoundedRectangle

        canvas = sv.canvas.before  # pyright: ignore[reportOptionalMemberAccess]  (a widget has a canvas)
        with canvas:
            Color(*T.PANEL)
            card = RoundedRectangle(pos=sv.pos, size=sv.size, radius=[dp(16)])
        sv.bind(pos=lambda _w, v: setattr(card, "pos", v), size=lambda _w, v: setattr(card, "size", v))
        child.padding = (dp(20), dp(16))  # the text keeps off the card's edge
    sv.add_widget(child)
    return sv


def grid(cols: int, spacing: float | None = None) -> GridLayout:
    g = GridLayout(cols=cols, spacing=spacing if spacing is not None else dp(14), size_hint_y=None)
    g.bind(minimum_height=g.setter("height"))
    return g


def landscape() -> bool:
    return Window.width > Window.height


class FormScreen(KioskScreen):
    progress = StringProperty("")
    error = StringProperty("")
    side_by_side = BooleanProperty(False)  # landscape keypad: the question on the left, the keys on the right
    _built: tuple | None = None

    def render(self, view) -> None:
        x = view.extra
        widget = x.get("widget", "")
        self.progress = x.get("progress", "")
        self.error = x.get("error", "")
        # landscape: the question on the left, the keys (digits, steppers, letters) on the right
        self.side_by_side = landscape() and widget in ("keypad", "date", "pick")
        self._place_buttons()
        self.ids.typed.text = ""
        self.ids.tools.clear_widgets()
        if not self.side_by_side:
            self.ids.tools.height = 0  # it was stretched while it held letters: kv's constant is not re-applied
        content = self.ids.content
        key = (x.get("field"), x.get("service"), view.elder_mode, widget)
        if widget == "keypad":
            self._keypad(view, content, rebuild=key != self._built)
        else:
            content.clear_widgets()
            if widget in ("choice", "yesno"):
                self._choices(view, content)
            elif widget == "pick":
                self._pick(view, content)
            elif widget == "date":
                self._date(view, content)
        self._built = key

    def _place_buttons(self) -> None:
        """Side by side (landscape keys): 下一步 / 返回 under the question, so the keys get the whole height and
        stay full-size targets; otherwise across the bottom."""
        btns = self.ids.buttons
        target = self.ids.head if self.side_by_side else self.ids.outer
        if btns.parent is not target:
            if btns.parent is not None:
                btns.parent.remove_widget(btns)
            target.add_widget(btns)

    def on_leave(self, *args) -> None:
        super().on_leave(*args)
        self.ids.content.clear_widgets()
        self.ids.typed.text = ""
        self.error = self.progress = ""
        self._built = None

    # -- widgets
    def _choices(self, view, content) -> None:
        theme = app_theme()
        choices = view.extra.get("choices", ())
        yesno = view.extra.get("widget") == "yesno"
        if landscape():
            cols = 2 if yesno else 3 if len(choices) > 4 else 2 if len(choices) > 1 else 1
            tall = 0
        else:
            # portrait: one column of tall targets that use the height (是 above 否, as big as a door)
            cols = 1 if len(choices) <= 5 else 2
            rows = max(1, -(-len(choices) // cols))
            tall = theme.button_h * (2.0 if rows <= 2 else 1.6 if rows <= 3 else 1.2)
        g = grid(cols, theme.pad * 0.8)
        for b in choices:
            g.add_widget(big_button(b, self._post, font=theme.button_font * (1 if landscape() else 1.15), grow=True,
                                    min_h=tall))
        content.add_widget(scrolled(g))

    def _pick(self, view, content) -> None:
        theme = app_theme()
        x = view.extra
        typed = x.get("typed", "")
        self.ids.typed.text = f"{' '.join(typed)}　{x.get('count', '')}" if typed else x.get("hint", "")
        self.ids.typed.font_size = theme.title if typed else theme.body
        self.ids.typed.color = T.TEXT if typed else T.MUTED
        letters = grid(3 if landscape() else 6, dp(10))
        clear = x.get("clear")
        for b in x.get("letters", ()):
            letters.add_widget(big_button(b, self._post, font=theme.title))
        options = grid(1, dp(10))
        for b in x.get("choices", ()):
            options.add_widget(big_button(b, self._post, font=theme.button_font, grow=True))
        if x.get("more"):
            options.add_widget(wrap_label(x["more"], theme.body, color=T.MUTED, halign="center"))
        if landscape():
            tools = self.ids.tools
            if clear is not None:
                cl = big_button(clear, self._post, font=theme.body)
                cl.size_hint_y = None
                tools.orientation = "vertical"
                tools.spacing = dp(10)
                tools.add_widget(cl)
            tools.add_widget(scrolled(letters))
            content.add_widget(scrolled(options))
            return
        box = BoxLayout(orientation="vertical", spacing=theme.pad)
        top = BoxLayout(orientation="vertical", spacing=dp(10), size_hint_y=0.45)
        if clear is not None:
            top.add_widget(big_button(clear, self._post, font=theme.body))
        top.add_widget(scrolled(letters))
        box.add_widget(top)
        box.add_widget(scrolled(options))
        content.add_widget(box)

    def _keypad(self, view, content, rebuild: bool) -> None:
        theme = app_theme()
        x = view.extra
        typed = x.get("typed", "")
        self.ids.typed.text = x.get("shown", "")
        self.ids.typed.font_size = theme.title * 1.3 if typed else theme.body
        self.ids.typed.color = T.TEXT if typed else T.MUTED
        if not rebuild and content.children:
            return  # the keys do not move under the finger while digits are typed
        content.clear_widgets()
        keys = list(x.get("keys", ()))
        g = GridLayout(cols=3, spacing=dp(12), size_hint=(None, None))
        g.bind(minimum_height=g.setter("height"))
        # portrait has the height to spare: keys a finger cannot miss in either type size (as on the PIN screen)
        key_h = theme.key if landscape() else max(theme.key, dp(200))
        for b in keys[:9] + [x["delete"], keys[9]]:
            w = big_button(b, self._post, font=theme.title if b.primary else theme.button_font)
            w.height = key_h
            g.add_widget(w)
        g.width = min(dp(560) if landscape() else dp(820), Window.width - theme.pad * 3)
        from kivy.uix.anchorlayout import AnchorLayout

        holder = AnchorLayout(anchor_x="center", anchor_y="center")
        holder.add_widget(g)
        content.add_widget(holder)

    def _date(self, view, content) -> None:
        theme = app_theme()
        x = view.extra
        self.ids.typed.text = x.get("shown", "")
        self.ids.typed.font_size = theme.title
        self.ids.typed.color = T.TEXT
        row = BoxLayout(orientation="horizontal", spacing=theme.pad * 0.6)
        for value, unit, steps in x.get("date", ()):
            col = BoxLayout(orientation="vertical", spacing=dp(10))
            if len(steps) == 4:  # the year: ±1 and ±10
                col.size_hint_x = 1.6
            ups = [b for b in steps if not b.label.startswith("−")]
            downs = [b for b in steps if b.label.startswith("−")][::-1]
            step_h = theme.button_h * (1 if landscape() else 1.5)  # portrait: the height is there to use
            up_row = BoxLayout(spacing=dp(10), size_hint_y=None, height=step_h)
            for b in ups:
                up_row.add_widget(big_button(b, self._post, font=theme.button_font))
            down_row = BoxLayout(spacing=dp(10), size_hint_y=None, height=step_h)
            for b in downs:
                down_row.add_widget(big_button(b, self._post, font=theme.button_font))
            col.add_widget(Widget())
            col.add_widget(up_row)
            col.add_widget(Label(text=f"{value} {unit}", font_size=theme.title * (1.2 if landscape() else 1.5),
                                 bold=True, color=T.TEXT, size_hint_y=None,
                                 height=theme.title * (2 if landscape() else 3)))
            col.add_widget(down_row)
            col.add_widget(Widget())
            row.add_widget(col)
        content.add_widget(row)
