"""Driving a Runtime from a test without Kivy: pump its queue until a screen shows, woken by every event."""

from __future__ import annotations

import threading

from kiosk import session as S
from kiosk.runtime import Runtime


def pump_until(rt: Runtime, woke: threading.Event, screens: tuple[S.Screen, ...], wait: float) -> S.Screen:
    """rt.wakeup must set `woke`; fails when no event arrives within `wait` seconds."""
    while True:
        woke.clear()
        rt.pump()
        if rt.state.screen in screens:
            return rt.state.screen
        if not woke.wait(wait):
            raise AssertionError(f"still on {rt.state.screen}, wanted {screens}")
