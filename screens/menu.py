from screens.base import KioskScreen


class MenuScreen(KioskScreen):
    """What this credential allows, as big tiles (the session decides which); the way out below them."""

    def render(self, view) -> None:
        tiles, bottom = self.ids.services, self.ids.buttons
        tiles.clear_widgets()
        for b in [b for b in bottom.children if b.primary][::-1]:
            bottom.remove_widget(b)
            tiles.add_widget(b)
