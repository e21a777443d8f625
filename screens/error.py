from screens.base import KioskScreen


class ErrorScreen(KioskScreen):
    """One full screen per fault: what happened and what to do next, in plain words, with a way on."""
