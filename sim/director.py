"""Drives the real app with real touches, for the scripted demo and the UI tests.

A journey is a generator that yields steps; the director runs one step per frame on the Kivy main
thread: wait for a condition, tap a button found by its text (a real touch at its centre), or take a
screenshot of the frame a person sees and check it (text that does not fit, targets too small).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.metrics import dp
from kivy.tests.common import UnitTestTouch
from kivy.uix.button import Button
from kivy.uix.label import Label

log = logging.getLogger(__name__)

MIN_TARGET_DP = 60


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
        x, y = btn.to_window(*btn.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        touch.touch_up()
        return Step("frames", f"tap {text}", frames=2)

    # -- looking at the screen
    def visible_widgets(self):
        stack = [self.app.root]
        while stack:
            w = stack.pop()
            if getattr(w, "opacity", 1) == 0 or w.width <= 0 or w.height <= 0:
                continue
            yield w
            stack.extend(w.children)

    def find_button(self, text: str):
        for w in self.visible_widgets():
            if isinstance(w, Button) and w.text == text and not w.disabled:
                return w
        return None

    def texts(self) -> list[str]:
        return [w.text for w in self.visible_widgets() if isinstance(w, Label) and w.text]

    def check_frame(self) -> dict:
        small, overflow = [], []
        buttons = [_rect(b) for b in self.visible_widgets() if isinstance(b, Button)]
        for w in self.visible_widgets():
            if isinstance(w, Label) and not isinstance(w, Button) and w.text:
                r = _rect(w)
                if any(_overlap(r, b) > 4 for b in buttons):
                    overflow.append({"text": w.text, "under_button": [round(v) for v in r]})
            if not isinstance(w, Label) or not w.text:
                continue
            if isinstance(w, Button) and (w.width < dp(MIN_TARGET_DP) or w.height < dp(MIN_TARGET_DP)):
                small.append({"text": w.text, "w_dp": round(w.width / dp(1)), "h_dp": round(w.height / dp(1))})
            tw, th = w.texture_size
            if tw > w.width + 2 or th > w.height + 2:
                overflow.append({"text": w.text, "texture": [tw, th], "box": [round(w.width), round(w.height)]})
            x0, y0 = w.to_window(w.x, w.y)
            if x0 < -1 or y0 < -1 or x0 + w.width > Window.width + 1 or y0 + w.height > Window.height + 1:
                overflow.append({"text": w.text, "offscreen": [round(x0), round(y0)]})
        return {"small_targets": small, "overflow": overflow}

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
        entry.update(self.check_frame())
        self.report.append(entry)
        log.info("screenshot %s", target.name)

    def _finish(self) -> None:
        self._step = None
        path = self.out / f"{self.prefix}-report.json"
        path.write_text(
            json.dumps({"steps": self.report, "errors": self.errors}, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        if self._done:
            self._done(self)
