"""Make sure pcscd (with vsmartcard's vpcd readers) is running, for tests and the demo.

pcscd must run as root here; it is started in the foreground so the caller owns the process and
can stop it. Nothing is killed by name: only a process we started, or the pid pcscd wrote itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SOCKET = Path("/run/pcscd/pcscd.comm")
PIDFILE = Path("/run/pcscd/pcscd.pid")
VPCD_READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")


def pcscd_answering() -> bool:
    """True if something accepts connections on pcscd's socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(SOCKET))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _readers() -> list[str]:
    try:
        from smartcard import scard

        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            return []
        try:
            hr, readers = scard.SCardListReaders(ctx, [])
            return list(readers) if hr == scard.SCARD_S_SUCCESS else []
        finally:
            scard.SCardReleaseContext(ctx)
    except Exception:  # status probe: never raise
        return []


def wait_ready(timeout: float = 10.0, readers=VPCD_READERS) -> bool:
    """Wait until pcscd answers and lists the given readers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pcscd_answering() and all(r in _readers() for r in readers):
            return True
        time.sleep(0.05)
    return False


def ensure_pcscd(timeout: float = 10.0) -> subprocess.Popen | None:
    """Start `pcscd --foreground` unless one already answers. Returns the process we started, or None.

    Raises RuntimeError if pcscd cannot be brought up within `timeout` (a test setup failure).
    """
    if pcscd_answering():
        if not wait_ready(timeout):
            raise RuntimeError("pcscd answers but the vpcd readers did not appear")
        return None
    # A stale socket from a killed pcscd makes the new one refuse to start.
    if SOCKET.exists():
        SOCKET.unlink(missing_ok=True)
    proc = subprocess.Popen(
        ["pcscd", "--foreground", "--error"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    if not wait_ready(timeout):
        stop_pcscd(proc)
        raise RuntimeError("pcscd did not become ready")
    return proc


def stop_pcscd(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Stop a pcscd we started (no-op for None)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def restart_pcscd(proc: subprocess.Popen | None = None, down_for: float = 0.3) -> subprocess.Popen | None:
    """Stop pcscd (the given process, else the pid in pcscd's own pid file) and start a fresh one."""
    if proc is not None:
        stop_pcscd(proc)
    else:
        try:
            pid = int(PIDFILE.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while pcscd_answering() and time.monotonic() < deadline:
                time.sleep(0.05)
    time.sleep(down_for)
    return ensure_pcscd()
