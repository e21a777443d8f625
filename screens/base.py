"""A thin screen: it renders a View and sends back the events its buttons carry; it decides nothing."""

from __future__ import annotations

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

    def _post(self, event) -> None:
        if self.post is not None:
            self.post(event)
