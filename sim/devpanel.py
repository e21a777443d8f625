"""The demo's dev panel (demo mode only): plays the devices' twins — insert and remove cards, place ID
cards, show codes, run the printer out of paper, take the backend offline — like VotingWorks' dev dock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kivy.core.window import Window
from kivy.metrics import dp
from kivy.uix.button import Button
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.scrollview import ScrollView

log = logging.getLogger(__name__)


def _actions(stack) -> list[tuple[str, list[tuple[str, Callable[[], object]]]]]:
    from sim.idcard_twin import load_personas as idcard_personas
    from sim.personas import load_personas
    from sim.vcard import NOT_SSCARD

    cards = [(f"插卡 {p['label']}", lambda k=p["key"]: stack.insert_card(k)) for p in load_personas()]
    cards += [(f"插卡 {NOT_SSCARD['label']}", lambda: stack.insert_card(NOT_SSCARD["key"])),
              ("拔出社保卡", stack.remove_card)]
    ids = [(f"放身份证 {k}", lambda k=k: stack.place_idcard(k)) for k in idcard_personas()]
    ids.append(("拿走身份证", stack.remove_idcard))

    def show_ecard(key: str, via_camera: bool) -> None:
        code = stack.ecard_code(key)  # a network call: run off the main thread
        stack.show_camera(code) if via_camera else stack.scan(code)

    codes = [
        ("摄像头: 电子社保卡 王秀兰", lambda: _bg(show_ecard, "elder", True)),
        ("扫码枪: 电子社保卡 李建国", lambda: _bg(show_ecard, "worker", False)),
        ("摄像头: 移开", lambda: stack.show_camera(None)),
    ]
    printer = [(f"打印纸 {s}", lambda s=s: stack.set_paper(s)) for s in ("full", "low", "out")]
    backend = [(f"后台 {m}", lambda m=m: stack.backend_mode(m)) for m in ("online", "offline", "error", "slow")]
    return [("社保卡", cards), ("身份证", ids), ("二维码", codes), ("打印机", printer), ("后台", backend)]


def _bg(fn, *args) -> None:
    def run():
        try:
            fn(*args)
        except Exception:
            log.warning("dev panel action failed", exc_info=True)

    threading.Thread(target=run, daemon=True).start()


def attach(app, stack) -> None:
    """A small DEV button in the bottom-left corner opens the panel."""
    panel = ModalView(size_hint=(0.9, 0.9), auto_dismiss=True)
    scroll = ScrollView()
    grid = GridLayout(cols=3, spacing=dp(6), padding=dp(10), size_hint_y=None)
    grid.bind(minimum_height=grid.setter("height"))
    for section, items in _actions(stack):
        grid.add_widget(Label(text=f"[b]{section}[/b]", markup=True, size_hint_y=None, height=dp(44)))
        grid.add_widget(Label(size_hint_y=None, height=dp(44)))
        grid.add_widget(Label(size_hint_y=None, height=dp(44)))
        for text, action in items:
            b = Button(text=text, size_hint_y=None, height=dp(56), font_size=dp(16))
            b.bind(on_release=lambda _b, a=action: (a(), panel.dismiss()))
            grid.add_widget(b)
        for _ in range(-len(items) % 3):  # each section starts on a row of its own
            grid.add_widget(Label(size_hint_y=None, height=dp(56)))
    scroll.add_widget(grid)
    panel.add_widget(scroll)
    toggle = Button(text="DEV", size_hint=(None, None), size=(dp(72), dp(44)), pos=(0, 0), opacity=0.6)
    toggle.bind(on_release=lambda *_: panel.open())
    Window.add_widget(toggle)
    app.dev_panel = (panel, toggle)  # keep them alive
