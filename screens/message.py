from screens.base import KioskScreen


class MessageScreen(KioskScreen):
    """Reading, checking, loading, printing, take-your-card: one message, nothing to tap."""
