"""systemd notifications (READY=1, WATCHDOG=1) for the kiosk unit's watchdog: a datagram to $NOTIFY_SOCKET.

Hand-written because the protocol is one sendto() and the python-systemd bindings need libsystemd headers.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one notification; False when not run by systemd (no socket) or it cannot be sent. Never raises."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode("ascii"), addr)
        return True
    except OSError:
        return False
