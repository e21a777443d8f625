"""Twin of a serial QR scanner: a pty whose far end "scans" by writing terminated lines at the baud rate.

    python -m sim.scanner_twin            # prints the pty path; each stdin line is scanned
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tty


class ScannerTwin:
    def __init__(self, baudrate: int = 9600, terminator: bytes = b"\r", pace: bool = True):
        self.baudrate = baudrate
        self.terminator = terminator
        self.pace = pace
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._port = os.ttyname(self._slave)

    @property
    def port(self) -> str:
        return self._port

    def scan(self, text: str, encoding: str = "utf-8") -> None:
        self.write_raw(text.encode(encoding) + self.terminator)

    def write_raw(self, data: bytes) -> None:
        byte_time = 10.0 / self.baudrate
        t0 = time.monotonic()
        for off in range(0, len(data), 32):
            os.write(self._master, data[off : off + 32])
            if self.pace:
                delay = t0 + (off + 32) * byte_time - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def close(self) -> None:
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> ScannerTwin:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="QR scanner twin on a pty")
    ap.add_argument("--baud", type=int, default=9600)
    args = ap.parse_args(argv)
    with ScannerTwin(args.baud) as twin:
        print(twin.port, flush=True)
        for line in sys.stdin:
            if line.strip():
                twin.scan(line.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
