"""The Kivy app: a full-screen kiosk window that renders the session's view. The only kiosk/ module
that imports Kivy (screens/ do too).

Call prepare_kivy() before anything imports kivy: Kivy reads its config at import time.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

SCREENS = (
    "idle", "message", "pin", "menu", "pension", "show_qr", "error", "notice", "scan",
    "service_info", "form", "review", "rating", "my_filings", "filed", "capture", "signature",
)
SCREEN_CLASSES = {  # screens/<name>.py holds the class
    "idle": "IdleScreen", "message": "MessageScreen", "pin": "PinScreen", "menu": "MenuScreen",
    "pension": "PensionScreen", "show_qr": "ShowQrScreen", "error": "ErrorScreen", "notice": "NoticeScreen",
    "scan": "ScanScreen", "service_info": "ServiceInfoScreen", "form": "FormScreen", "review": "ReviewScreen",
    "rating": "RatingScreen", "my_filings": "MyFilingsScreen", "filed": "FiledScreen",
    "capture": "CaptureScreen", "signature": "SignatureScreen",
}
SIZES = {"landscape": (1280, 800), "portrait": (1080, 1920)}


def attachment_reader(runtime):
    """The picture under review by its digest: the runtime keeps the session's attachments in memory
    (a runtime without them shows the last preview frame instead)."""
    get = getattr(runtime, "attachment_bytes", None)
    if get is None:
        return lambda digest: None
    return get


class FontMissing(RuntimeError):
    pass


def find_cjk_font() -> str:
    """The Simplified Chinese face through fontconfig, never a hard-coded path."""
    if shutil.which("fc-match") is None:
        raise FontMissing("fontconfig (fc-match) is not installed — apt-get install fontconfig fonts-noto-cjk")
    out = subprocess.run(
        ["fc-match", "-f", "%{file}\n%{index}\n%{lang}", "sans:lang=zh-cn"], capture_output=True, text=True, timeout=10
    ).stdout.split("\n", 2)
    path, index, langs = (out + ["", "", ""])[:3]
    if not path or not Path(path).is_file() or "zh-cn" not in langs.split("|"):
        raise FontMissing(
            f"no Chinese font found (fc-match sans:lang=zh-cn gave {path!r}) — apt-get install fonts-noto-cjk"
        )
    face = _single_face(path, int(index or 0))
    flat = flat_face_path(face)
    return str(flat) if _fresh(flat, face) else face


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kiosk-fonts"


def _fresh(made: Path, source: str) -> bool:
    return made.is_file() and made.stat().st_mtime >= Path(source).stat().st_mtime


def flat_face_path(face: str) -> Path:
    return _cache() / f"{Path(face).stem.removesuffix('-flat')}-flat.otf"


def make_flat_face(face: str) -> str:
    """The face with its CFF subroutines inlined: outlines and rendering are the same (checked pixel for
    pixel), but FreeType copies a face's subroutines into memory for every font size SDL_ttf opens —
    2.5 MB per size for Noto Sans CJK, 0.7 MB without them. Slow to make (~25 s of CPU, ~430 MB at its
    peak), so it is made once: at install (`kiosk run --config F --prepare`) or in the background after
    a first start; find_cjk_font() uses it from then on."""
    target = flat_face_path(face)
    if _fresh(target, face):
        return str(target)
    from fontTools.ttLib import TTFont

    font = TTFont(face)
    if "CFF " not in font:
        return face  # TrueType outlines: nothing to inline
    font["CFF "].cff.desubroutinize()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")  # one name: a killed run leaves no pile of 18 MB files
    font.save(str(tmp))
    tmp.replace(target)  # atomic: a half-written font is never picked up
    return str(target)


def _single_face(path: str, index: int) -> str:
    """SDL_ttf opens face 0 of a collection, which in Noto CJK is the Japanese one (other glyph shapes
    for many hanzi); so the face fontconfig chose is saved once as a font file of its own."""
    if index == 0 or not path.lower().endswith((".ttc", ".otc")):
        return path
    cache = _cache()
    target = cache / f"{Path(path).stem}-{index}.otf"
    if _fresh(target, path):
        return str(target)
    try:
        from fontTools.ttLib import TTCollection

        cache.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        TTCollection(path, lazy=True).fonts[index].save(str(tmp))
        tmp.replace(target)  # atomic: a half-written font is never picked up
        return str(target)
    except Exception as e:  # a read-only disk or a broken collection: the right glyphs, other shapes
        log.warning("could not extract face %d of %s (%s); using the collection", index, path, type(e).__name__)
        return path


def prepare_kivy(*, size: tuple[int, int] | None, dev: bool) -> None:
    """Kiosk window settings: borderless full screen, Escape does not exit, cursor hidden outside dev."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")  # our redacting handlers see Kivy's records too
    os.environ.setdefault("KIVY_NO_CONFIG", "1")
    # SDL would turn SIGTERM/SIGINT into a window close request, which the kiosk refuses; the app
    # handles them itself (build_app).
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    from kivy.config import Config

    Config.set("kivy", "exit_on_escape", "0")
    Config.set("kivy", "keyboard_mode", "system")
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("graphics", "show_cursor", "1" if dev else "0")
    Config.set("graphics", "borderless", "1")
    Config.set("graphics", "resizable", "0")
    if size is None:
        Config.set("graphics", "fullscreen", "auto")
    else:
        Config.set("graphics", "fullscreen", "0")
        Config.set("graphics", "width", str(size[0]))
        Config.set("graphics", "height", str(size[1]))
        Config.set("graphics", "position", "custom")
        Config.set("graphics", "left", "0")
        Config.set("graphics", "top", "0")


def ready_after_first_frame(window, schedule_once, send) -> None:
    """Send READY=1 once the first frame is on screen, not before: systemd (and whoever waits on the unit)
    should see READY only when a resident can see the kiosk.

    Kivy calls handlers bound to on_flip before the window's own on_flip, which swaps the buffers; so the
    first flip only schedules the message, and the clock runs it on its next tick, after the swap.
    """

    def on_first_flip(*_a):
        window.unbind(on_flip=on_first_flip)
        schedule_once(lambda _dt: send("READY=1"), 0)

    window.bind(on_flip=on_first_flip)


def build_app(runtime, *, font_path: str, dev: bool = False, shuffle_keypad: bool = False, on_ready=None):
    """Create the KioskApp (import Kivy only now, after prepare_kivy)."""
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.text import DEFAULT_FONT, LabelBase
    from kivy.core.window import Window
    from kivy.lang import Builder
    from kivy.uix.screenmanager import NoTransition, ScreenManager

    from kiosk import session as S
    from kiosk import view as V
    from kiosk.i18n import tr
    from kiosk.sdnotify import notify
    from screens import linebreak
    from screens import widgets as _widgets  # noqa: F401  (registers ToneIcon, TitleWithIcon with the Factory)
    from screens.theme import Theme

    # Every label uses the CJK font: Chinese must never render as boxes.
    LabelBase.register(DEFAULT_FONT, font_path, font_path, font_path, font_path)
    # Every plain label breaks Chinese by character and never inside a number, a date or a bracketed phrase.
    linebreak.install()
    root_dir = Path(__file__).resolve().parent.parent / "screens"
    Builder.load_file(str(root_dir / "widgets" / "widgets.kv"))
    for name in SCREENS:  # all rules up front (a few ms; rules of one screen's file are used by another)
        Builder.load_file(str(root_dir / f"{name}.kv"))
    Builder.load_file(str(root_dir / "root.kv"))

    class KioskApp(App):
        title = "village-kiosk"

        def __init__(self, **kw):
            super().__init__(**kw)
            self.runtime = runtime
            self.theme = Theme(elder=runtime.state.elder_mode, portrait=Window.height > Window.width)
            self.use_kivy_settings = False
            self.view = None

        def build(self):
            from kivy.factory import Factory

            root = Factory.KioskRoot()
            sm = ScreenManager(transition=NoTransition())
            self.sm = sm
            self._screen("idle")  # the rest on first use: most are seen only in a session, some never
            root.ids.holder.add_widget(sm)
            root.ids.elder_button.bind(on_release=lambda *_: runtime.post(S.ToggleElderMode()))
            root.ids.repeat_button.bind(on_release=lambda *_: runtime.post(S.Repeat()))
            root.ids.help_button.bind(on_release=lambda *_: runtime.post(S.AskHelp()))
            Window.bind(size=lambda _w, size: setattr(self.theme, "portrait", size[1] > size[0]))
            self._overlay = None  # the help panel or the shrink question, when one is open
            Window.bind(on_request_close=lambda *a, **k: not dev)  # closing is refused outside dev
            # systemd stops the kiosk with SIGTERM (Ctrl+C in a terminal sends SIGINT): stop cleanly, devices
            # released, at once. SDL's own handler is off (prepare_kivy): it turned both into a close
            # request, which is refused outside dev, so `systemctl stop` waited for its timeout.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: Clock.schedule_once(lambda _dt: self.stop(), 0))
            Window.bind(on_touch_down=lambda *a: runtime.post(S.Touch()) and False)
            runtime.listeners.append(self._on_state)
            # events pump at once through a trigger (Kivy's Clock is safe to trigger from other threads);
            # the slow interval is only a safety net
            runtime.wakeup = Clock.create_trigger(self._pump, 0)
            Clock.schedule_interval(self._pump, 0.5)
            Clock.schedule_interval(self._tick, 1.0)
            self.root_widget = root
            self.render()
            return root

        def on_start(self):
            runtime.start()
            ready_after_first_frame(Window, Clock.schedule_once, notify)
            ready = on_ready
            if ready is not None:
                Clock.schedule_once(lambda dt: ready(self), 0)

        def _screen(self, name: str):
            """The screen called `name`, built the first time it is shown."""
            if not self.sm.has_screen(name):
                cls = SCREEN_CLASSES[name]
                module = importlib.import_module(f"screens.{name}")
                scr = getattr(module, cls)(name=name)
                scr.post = runtime.post
                if name == "pin":
                    scr.shuffle = shuffle_keypad
                if name in ("scan", "capture"):
                    scr.frames = runtime.latest_frame
                if name == "capture":
                    scr.still = attachment_reader(runtime)
                self.sm.add_widget(scr)
            return self.sm.get_screen(name)

        def on_stop(self):
            runtime.stop()

        def _on_state(self, _state) -> None:
            self.render()

        def _pump(self, _dt) -> None:
            runtime.pump()  # returns None: a False would unschedule this interval

        def _tick(self, _dt):
            # the UI loop is alive: tell systemd's watchdog (a hung loop stops these and gets restarted)
            notify("WATCHDOG=1")
            runtime.post(S.Tick())
            n = runtime.state.countdown(runtime.clock())
            self.root_widget.ids.countdown.text = "" if n is None else tr(runtime.state.locale, "countdown", n=n)

        def open_settings(self, *largs):
            """F1 opens nothing on a kiosk."""
            return False

        def render(self):
            state = runtime.state
            v = V.build(state, runtime.clock())
            self.view = v
            self.theme.elder = v.elder_mode
            root = self.root_widget
            root.ids.elder_button.text = v.elder_label
            root.ids.repeat_button.text = v.repeat_label  # no text: the kv rule hides it and gives its width back
            root.ids.help_button.text = v.help_label
            root.ids.app_title.text = tr(v.locale, "app.title")
            root.ids.countdown.text = v.countdown
            self._show_overlay(v)
            if self.sm.current != v.screen:
                self._screen(v.screen)
                self.sm.current = v.screen
            screen = self.sm.current_screen
            if screen is not None:
                screen.show(v)

        def _show_overlay(self, v) -> None:
            """View.help (the help panel) or View.confirm_shrink (把字变小吗？) in the screen's place."""
            from kivy.factory import Factory

            from screens.widgets import BigButton

            holder = self.root_widget.ids.holder
            help_, shrink = v.help, v.confirm_shrink
            key = repr(("help", help_)) if help_ else repr(("shrink", shrink)) if shrink else None
            if key is None:
                if self._overlay is not None:
                    holder.clear_widgets()
                    holder.add_widget(self.sm)
                    self._overlay = None
                return
            if self._overlay is not None and self._overlay[0] == key:
                return
            panel = Factory.HelpPanel() if help_ else Factory.ConfirmShrinkPanel()
            buttons = []
            if help_:
                panel.title = help_.get("title", "")
                panel.sent = help_.get("sent", "") or ""
                panel.sent_tone = help_.get("sent_tone", "") or ""
                for label, value in help_.get("lines", ()):
                    panel.ids.lines.add_widget(_help_line(label, value, self.theme))
                buttons.append((help_.get("close_label", ""), S.Back(), True))
            else:
                shrink = shrink or {}
                panel.title = shrink.get("title", "")
                panel.body = shrink.get("body", "")
                buttons += [(shrink.get("no_label", ""), S.ConfirmShrink(False), False),
                            (shrink.get("yes_label", ""), S.ConfirmShrink(True), True)]
            for text, event, primary in buttons:
                b = BigButton(text=text, primary=primary)
                b.event = event
                b.bind(on_release=lambda btn: runtime.post(btn.event))
                if shrink and not help_:
                    b.height = self.theme.button_h * (2.6 if self.theme.portrait else 1.3)
                panel.ids.buttons.add_widget(b)
            holder.clear_widgets()
            holder.add_widget(panel)
            self._overlay = (key, panel)

    return KioskApp()


def _help_line(label: str, value: str, theme):
    """One line of the help panel: who (a volunteer, the station) and a phone number, in large type. Portrait
    has the height: who above, the number below it in the largest type on the panel."""
    from screens.form import pair_row

    if not theme.portrait:
        return pair_row(label, value, theme.button_font, label_frac=0.4, value_bold=True)
    from kivy.uix.boxlayout import BoxLayout

    from screens.form import wrap_label
    from screens.theme import MUTED

    box = BoxLayout(orientation="vertical", size_hint_y=None, spacing=theme.pad * 0.3)
    parts = [wrap_label(label, theme.title * 0.8, color=MUTED)] if label else []
    # the number is what the person reads and dials: the largest thing on the panel
    parts.append(wrap_label(value, theme.figure * 1.6 if label else theme.title, bold=bool(label)))
    for w in parts:
        box.add_widget(w)
        w.bind(height=lambda *_a: setattr(box, "height", sum(c.height for c in box.children) + box.spacing))
    return box
