"""Drives the real app with real touches, for the scripted demo and the UI tests.

A journey is a generator that yields steps; the director runs one step per frame on the Kivy main
thread: wait for a condition, tap a button found by its text (a real touch at its centre), or take a
screenshot of the frame a person sees and check it: text that does not fit, and the elder-friendly floors
measured on the rendered frame (sim/uicheck.py): type size, touch targets by mode, text/background
contrast, a voice prompt since the screen was entered, the empty share of a portrait screen, and a line
break inside a number, a date or a bracketed phrase (from the lines each label drew).
What a ScrollView has scrolled out of its viewport is not on screen: it is skipped, and a widget partly
scrolled out is judged by its visible part (text too big for its own label is still found). A tap on a
button scrolled out of view scrolls it into view first, as a finger would.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.metrics import dp, sp
from kivy.tests.common import UnitTestTouch
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.scrollview import ScrollView

from screens.linebreak import rendered_lines, split_runs
from sim import uicheck as U

log = logging.getLogger(__name__)


@dataclass
class Step:
    kind: str  # until | frames | shot
    label: str = ""
    predicate: Callable[[], bool] | None = None
    timeout: float = 10.0
    frames: int = 2
    started: float = field(default=0.0)


def _rect(w) -> tuple[float, float, float, float]:
    x, y = w.to_window(w.x, w.y)
    return x, y, x + w.width, y + w.height


def _clip(r, c):
    """The part of rect r inside rect c (None: no clip), or None when nothing of r is inside."""
    if c is None:
        return r
    x0, y0, x1, y1 = max(r[0], c[0]), max(r[1], c[1]), min(r[2], c[2]), min(r[3], c[3])
    return (x0, y0, x1, y1) if x1 - x0 > 0.5 and y1 - y0 > 0.5 else None


def _overlap(a, b) -> float:
    """Height of the overlap of two rects (0 when apart): text hidden under a button."""
    if min(a[2], b[2]) - max(a[0], b[0]) <= 0:
        return 0.0
    return max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


class JourneyFailed(Exception):
    pass


class Director:
    def __init__(self, app, stack, out_dir: Path, prefix: str):
        self.app = app
        self.stack = stack
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.report: list[dict] = []
        self.errors: list[str] = []
        self._gen: Generator[Step, object, None] | None = None
        self._step: Step | None = None
        self._frames_left = 0
        self._done = None
        self.speech: list[dict] = []  # every Speak effect, with the screen it was spoken on
        self._screen = None  # the session's screen, and the index into speech where it was entered
        self._entered = 0
        # when the countdown was last seen hidden, and whether it shows: a prompt spoken since then is its own
        self._countdown_hidden_at = time.monotonic()
        self._countdown_shown = False
        self._voice_hooked = False
        try:
            self._hook_voice()
        except Exception:  # a runtime without the hook points: say so in every entry, do not stop the run
            log.warning("director: the runtime's effects cannot be observed; voice prompts not measured",
                        exc_info=True)

    def _hook_voice(self) -> None:
        """Note every Speak the runtime runs (the demo runs without a voice: the effect still flows)."""
        rt = getattr(self.app, "runtime", None)
        if rt is None:
            return
        from kiosk import session as S

        self._screen = rt.state.screen
        inner = rt._run

        def run(eff):
            if isinstance(eff, S.Speak):
                self._note_screen(rt.state.screen)  # effects run before listeners see the new state
                self.speech.append({"msgid": eff.msgid, "screen": str(rt.state.screen), "t": time.monotonic()})
            inner(eff)

        rt._run = run
        rt.listeners.insert(0, lambda st: self._note_screen(st.screen))
        self._voice_hooked = True

    def _note_screen(self, screen) -> None:
        if screen != self._screen:
            self._screen = screen
            self._entered = len(self.speech)

    # -- steps a journey yields
    def until(self, predicate, label: str, timeout: float = 10.0) -> Step:
        return Step("until", label, predicate, timeout)

    def until_screen(self, name: str, title: str | None = None, timeout: float = 10.0) -> Step:
        def ok():
            v = self.app.view
            return v is not None and v.screen == name and (title is None or v.title == title)

        return self.until(ok, f"screen {name} {title or ''}".strip(), timeout)

    def frames(self, n: int = 2) -> Step:
        return Step("frames", frames=n)

    def shot(self, name: str) -> Step:
        return Step("shot", name, frames=3)

    def tap(self, text: str) -> Step:
        """Touch the visible button whose text is `text` (exactly), like a finger would."""
        btn = self.find_button(text)
        if btn is None:
            raise JourneyFailed(f"no visible button {text!r} on screen {self.app.view.screen}")
        self._scroll_into_view(btn)
        x, y = btn.to_window(*btn.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        touch.touch_up()
        return Step("frames", f"tap {text}", frames=2)

    def draw(self, cls_name: str, strokes) -> Step:
        """Draw with a finger on the visible widget of class `cls_name`: strokes of (x, y) points, each in 0..1 of
        the widget's box (a signature on the pad)."""
        pad = next((w for w in self.visible_widgets() if type(w).__name__ == cls_name), None)
        if pad is None:
            raise JourneyFailed(f"no visible {cls_name} on screen {self.app.view.screen}")
        for stroke in strokes:
            pts = [pad.to_window(pad.x + fx * pad.width, pad.y + fy * pad.height) for fx, fy in stroke]
            touch = UnitTestTouch(*pts[0])
            touch.touch_down()
            for x, y in pts[1:]:
                touch.touch_move(x, y)
            touch.touch_up()
        return Step("frames", f"draw on {cls_name}", frames=2)

    # -- looking at the screen
    def _walk(self):
        """(widget, clip) for every shown widget; clip is the window rect of the ScrollViews it sits in (what of
        it can be seen), None outside any."""
        stack: list[tuple[Any, tuple[float, float, float, float] | None]] = [(self.app.root, None)]
        while stack:
            w, clip = stack.pop()
            if getattr(w, "opacity", 1) == 0 or w.width <= 0 or w.height <= 0:
                continue
            yield w, clip
            inner = clip
            if isinstance(w, ScrollView):
                inner = _clip(_rect(w), clip) or (0.0, 0.0, 0.0, 0.0)
            stack.extend((c, inner) for c in w.children)

    def visible_widgets(self):
        """Widgets a person can see: shown, and not scrolled entirely out of their ScrollView."""
        for w, clip in self._walk():
            if _clip(_rect(w), clip) is not None:
                yield w

    def find_button(self, text: str):
        for w, _clip_rect in self._walk():
            if isinstance(w, Button) and w.text == text and not w.disabled:
                return w
        return None

    def _scroll_into_view(self, w) -> None:
        """A finger would scroll first: bring a button scrolled out of its list into view (at once)."""
        p = w.parent
        while p is not None and p is not p.parent:
            if isinstance(p, ScrollView):
                r, c = _rect(w), _rect(p)
                if r[1] < c[1] - 1 or r[3] > c[3] + 1 or r[0] < c[0] - 1 or r[2] > c[2] + 1:
                    from kivy.animation import Animation

                    Animation.cancel_all(p, "scroll_x", "scroll_y")
                    p.scroll_to(w, padding=0, animate=False)
                    p.update_from_scroll()  # now, not on the next frame: the touch goes where the button is
            p = p.parent

    def texts(self) -> list[str]:
        return [w.text for w in self.visible_widgets() if isinstance(w, Label) and w.text]

    def check_frame(self, frame: np.ndarray | None = None) -> dict:
        small, overflow, small_text, low_contrast, sizes, broken = [], [], [], [], [], []
        worst = None  # the lowest-contrast text pair, reported even when it passes
        elder = bool(getattr(self.app.view, "elder_mode", True))
        floor = U.TARGET_DP[elder]
        # what can be seen: a widget scrolled out of its ScrollView is not on screen (skipped), one scrolled
        # partly out is judged by its visible part; text too big for its own label is judged whole
        visible = [(w, c) for w, clip in self._walk() if (c := _clip(_rect(w), clip)) is not None]
        buttons = [c for b, c in visible if isinstance(b, Button)]
        win = (Window.width, Window.height)
        for w, r in visible:
            if isinstance(w, Label) and not isinstance(w, Button) and w.text:
                if any(_overlap(r, b) > 4 for b in buttons):
                    overflow.append({"text": w.text, "under_button": [round(v) for v in r]})
            # a target is anything a finger presses, with or without text
            if w.is_event_type("on_press") and not w.disabled:
                w_dp, h_dp = w.width / dp(1), w.height / dp(1)
                if U.target_too_small(w_dp, h_dp, elder):
                    small.append({"text": U.short(getattr(w, "text", "") or type(w).__name__),
                                  "w_dp": round(w_dp), "h_dp": round(h_dp), "floor_dp": floor})
            if not isinstance(w, Label) or not w.text or not w.text.strip():
                continue
            size_sp = round(w.font_size / sp(1), 1)
            sizes.append(size_sp)
            if U.text_too_small(size_sp, elder):
                small_text.append({"text": U.short(w.text), "sp": size_sp})
            if not w.markup:  # the lines it drew: a number, a date or a bracketed phrase split over two is a finding
                for run in split_runs(rendered_lines(w), w.text):
                    broken.append({"text": U.short(w.text), "run": run})
            tw, th = w.texture_size
            if tw > w.width + 2 or th > w.height + 2:
                overflow.append({"text": w.text, "texture": [tw, th], "box": [round(w.width), round(w.height)]})
            if r[0] < -1 or r[1] < -1 or r[2] > Window.width + 1 or r[3] > Window.height + 1:
                overflow.append({"text": w.text, "offscreen": [round(r[0]), round(r[1])]})
            # a sliver of a row scrolled almost out of view shows no readable text: no contrast to judge
            if frame is not None and r[3] - r[1] >= min(w.height, w.font_size) * 0.8:
                fg = w.disabled_color if w.disabled else w.color
                bg = U.background_behind(U.crop(frame, r, win), fg)
                if bg is not None:
                    ratio = U.contrast_ratio(U.blend(fg, bg), bg)
                    pair = {"text": U.short(w.text), "ratio": round(ratio, 2),
                            "fg": U.rgb_hex(U.blend(fg, bg)), "bg": U.rgb_hex(bg)}
                    if worst is None or ratio < worst["ratio"]:
                        worst = pair
                    if U.contrast_too_low(ratio):
                        low_contrast.append(pair)
        empty = None
        if frame is not None and Window.height > Window.width:  # portrait: is the height used?
            empty = round(U.empty_rows_share(frame), 3)
        return {"small_targets": small, "overflow": overflow, "small_text": small_text,
                "min_text_sp": min(sizes) if sizes else None, "low_contrast": low_contrast, "min_contrast": worst,
                "empty_share": empty, "broken_runs": broken}

    def check_voice(self) -> dict:
        """The prompts spoken since this screen was entered; none is a finding (and so is a countdown
        that appeared without being spoken)."""
        if not self._voice_hooked:
            return {"spoken": None, "no_voice": [{"screen": "?", "what": "voice prompts not measured"}]}
        spoken = [s["msgid"] for s in self.speech[self._entered:]]
        missing = []
        if not spoken:
            missing.append({"screen": str(self._screen), "what": "no prompt since the screen was entered"})
        if self._countdown_shown and not any(s["t"] >= self._countdown_hidden_at for s in self.speech):
            missing.append({"screen": str(self._screen), "what": "countdown not spoken"})
        return {"spoken": spoken, "no_voice": missing}

    # -- running
    def run(self, journey, on_done) -> None:
        self._gen = journey(self)
        self._done = on_done
        # Kivy's Clock holds bound methods weakly: the app keeps the director alive while it runs.
        self.app.director = self
        self._advance(None)
        Clock.schedule_interval(self._poll, 0)

    def _advance(self, value) -> None:
        assert self._gen is not None
        try:
            step = self._gen.send(value)
            step.started = time.monotonic()
            self._frames_left = step.frames
            self._step = step
        except StopIteration:
            self._finish()
        except JourneyFailed as e:
            self.errors.append(str(e))
            self._finish()

    def _poll(self, _dt):
        step = self._step
        if step is None:
            return False
        countdown = getattr(getattr(self.app.root, "ids", None), "countdown", None) if self.app.root else None
        self._countdown_shown = bool(countdown is not None and countdown.text)
        if not self._countdown_shown:
            self._countdown_hidden_at = time.monotonic()
        if step.kind == "until":
            if step.predicate is not None and step.predicate():
                # let the new screen lay itself out before anything taps it
                self._step = Step("frames", step.label, frames=2)
            elif time.monotonic() - step.started > step.timeout:
                v = self.app.view
                self.errors.append(f"timed out waiting for {step.label} (on {v.screen if v else '?'}: {v.title if v else ''})")
                self._finish()
        else:
            self._frames_left -= 1
            if self._frames_left <= 0:
                if step.kind == "shot":
                    self._take(step.label)
                self._advance(True)
        return self._step is not None

    def _take(self, name: str) -> None:
        target = self.out / f"{self.prefix}-{name}.png"
        made = Path(Window.screenshot(name=str(target)))
        made.replace(target)
        v = self.app.view
        entry = {
            "name": name, "png": str(target), "screen": v.screen, "title": v.title, "texts": self.texts(),
            "elder_mode": v.elder_mode, "locale": v.locale, "window": [Window.width, Window.height],
        }
        try:
            from PIL import Image

            with Image.open(target) as im:
                frame = np.asarray(im.convert("RGB"))
        except OSError:
            log.warning("screenshot %s unreadable: no contrast or empty-share check", target.name)
            frame = None
        entry.update(self.check_frame(frame))
        entry.update(self.check_voice())
        entry["flags"] = U.flags_of(entry)
        self.report.append(entry)
        log.info("screenshot %s", target.name)

    def _finish(self) -> None:
        self._step = None
        path = self.out / f"{self.prefix}-report.json"
        from screens import theme

        # the theme's elder/standard ratios: once per run, not per screenshot
        doc = {"steps": self.report, "errors": self.errors, "ratios": U.theme_ratios(theme.SIZES),
               "low_ratio": U.low_ratios(theme.SIZES, getattr(theme, "DP_ROLES", U.DP_ROLES)),
               "speech": [{"msgid": x["msgid"], "screen": x["screen"]} for x in self.speech]}
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        if self._done:
            self._done(self)
