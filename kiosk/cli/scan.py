"""`kiosk scan`: print codes from the serial QR scanner as they arrive (a technician's check).

Exit codes: 0 ended by --count or --seconds (or Ctrl-C) · 2 scanner port cannot be opened.

    python -m kiosk.cli.scan --port /dev/pts/4 [--baud 9600] [--terminator cr] [--count 1] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time

from devices.base import DeviceStatus, ReaderStatusChanged
from devices.scanner import CodeScanned, ScanRejected, SerialScanner

EXIT_OK, EXIT_NO_SCANNER = 0, 2
DEFAULT_PORT = "/dev/kiosk-scanner"  # the udev name; override with --port or KIOSK_SCANNER_PORT
TERMINATORS = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n", "tab": b"\t"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("scan", help="print codes from the QR scanner")
    _add_args(p)
    return p


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", default=None, help=f"serial port (default $KIOSK_SCANNER_PORT or {DEFAULT_PORT})")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--terminator", choices=sorted(TERMINATORS), default="cr")
    p.add_argument("--count", type=int, default=0, help="stop after this many codes (0: no limit)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: no limit)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    port = args.port or os.environ.get("KIOSK_SCANNER_PORT") or DEFAULT_PORT
    events: queue.Queue = queue.Queue()
    scanner = SerialScanner(port, args.baud, TERMINATORS[args.terminator], reopen_interval=0.5)
    scanner.start(events.put)
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
    seen = 0
    try:
        while True:
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                return EXIT_OK
            try:
                ev = events.get(timeout=min(wait, 0.5))
            except queue.Empty:
                continue
            if isinstance(ev, ReaderStatusChanged) and ev.status is DeviceStatus.NO_DEVICE:
                print(f"扫码器：无法打开端口 {port}，请检查连接线", file=sys.stderr)
                return EXIT_NO_SCANNER
            if isinstance(ev, ScanRejected):
                print(f"扫码器：丢弃一条无效数据（{ev.reason}）", file=sys.stderr)
            elif isinstance(ev, CodeScanned):
                seen += 1
                print(json.dumps({"text": ev.text, "source": ev.source}, ensure_ascii=False) if args.json
                      else ev.text, flush=True)
                if args.count and seen >= args.count:
                    return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        scanner.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kiosk.cli.scan")
    _add_args(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
