"""A thin screen: it renders a View and sends back the events its buttons carry; it decides nothing."""

from __future__ import annotations

from dataclasses import replace

from kivy.properties import ObjectProperty, StringProperty
from kivy.uix.screenmanager import Screen

from screens.widgets import buttons_for


class KioskScreen(Screen):
    title = StringProperty("")
    body = StringProperty("")
    tone = StringProperty("info")
    view = ObjectProperty(None, allownone=True)
    post = ObjectProperty(None, allownone=True)  # callable(event): set by the app

    def show(self, view) -> None:
        # A touch only moves the deadline: rebuilding now would pull the buttons from under the finger.
        if self.view is not None and replace(view, countdown="") == replace(self.view, countdown=""):
            return
        self.view = view
        self.title = view.title
        self.body = view.body
        self.tone = view.tone
        box = self.ids.get("buttons")
        if box is not None:
            box.clear_widgets()
            for w in buttons_for(view.buttons, self._post):
                box.add_widget(w)
        self.render(view)

    def render(self, view) -> None:
        """Screen-specific parts; the default has none."""

    def on_leave(self, *args) -> None:
        """Nothing of the person stays in a hidden screen's widgets."""
        self.view = None
        self.title = self.body = ""
        for name in ("buttons", "rows", "payments", "services"):
            box = self.ids.get(name)
            if box is not None:
                box.clear_widgets()

    def _post(self, event) -> None:
        if self.post is not None:
            self.post(event)
