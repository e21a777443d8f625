"""Shared widgets: big buttons, the top bar, the countdown bar, the PIN dots."""

from __future__ import annotations

from kivy.properties import BooleanProperty, ObjectProperty
from kivy.uix.button import Button


class BigButton(Button):
    """A large touch target; `event` is what the session receives when it is released."""

    event = ObjectProperty(None, allownone=True)
    primary = BooleanProperty(False)


def buttons_for(view_buttons, on_event):
    """Make BigButtons for a view's buttons, posting their events on release."""
    out = []
    for b in view_buttons:
        w = BigButton(text=b.label, primary=b.primary)
        w.event = b.event
        w.bind(on_release=lambda btn: on_event(btn.event))
        out.append(w)
    return out
