from screens.base import KioskScreen


class IdleScreen(KioskScreen):
    """Home: insert the card. The language switch lives here only (the session allows it only here)."""
