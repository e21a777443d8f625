from screens.base import KioskScreen


class MenuScreen(KioskScreen):
    """What this credential allows, as big tiles (the session decides which)."""
