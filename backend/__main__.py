"""python -m backend --data DIR [--host H] [--port N] [--verify-port M] [--worklist-port W] [--demo]
[--receipt-base-url URL] | --data DIR --set-clerk-password (reads it from stdin) | --write-openapi [PATH]"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from backend.pki import DEFAULT_SITE_ID, DEFAULT_TERMINAL_ID

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend", description="Reference backend (HTTPS, mutual TLS)")
    parser.add_argument("--data", type=Path, help="data directory: SQLite file and demo PKI (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default loopback only)")
    parser.add_argument("--port", type=int, default=8443, help="API port, mutual TLS (0 picks a free port)")
    parser.add_argument(
        "--verify-port", type=int, default=8444,
        # Fixed by default: printed receipts carry this origin in their QR code for years.
        help="public receipt-verification port, no client certificate (default 8444; 0 picks a free port)",
    )
    parser.add_argument(
        "--worklist-port", type=int, default=8445,
        help="township worklist port, HTTPS with clerk sign-in (default 8445; 0 picks a free port)",
    )
    parser.add_argument(
        "--set-clerk-password", action="store_true",
        help="read the township clerk's password from stdin (one line), store its hash under --data and exit",
    )
    parser.add_argument("--demo", action="store_true", help="also serve /v1/demo/* (e-card codes for demos)")
    parser.add_argument(
        "--receipt-base-url", help="https origin printed in receipt QR codes (default: the verify listener)"
    )
    parser.add_argument("--terminal-id", default=DEFAULT_TERMINAL_ID, help="terminal to issue a client cert for")
    parser.add_argument("--site-id", default=DEFAULT_SITE_ID, help="site of that terminal (certificate OU)")
    parser.add_argument(
        "--revoke-cert", type=Path, metavar="PEM",
        help="revoke this terminal certificate in the backend under --data (takes effect at once) and exit",
    )
    parser.add_argument(
        "--write-openapi", nargs="?", const=OPENAPI_PATH, type=Path, metavar="PATH",
        help=f"write the OpenAPI document (default {OPENAPI_PATH.name} beside this module) and exit",
    )
    args = parser.parse_args(argv)

    if args.write_openapi is not None:
        from backend.app import write_openapi

        write_openapi(args.write_openapi)
        print(f"wrote {args.write_openapi}")
        return 0
    if args.data is None:
        parser.error("--data is required to run the server")
    if args.set_clerk_password:
        from backend.worklist import set_clerk_password

        password = sys.stdin.readline().rstrip("\r\n")
        try:
            path = set_clerk_password(args.data / "keys", password)
        except ValueError as e:
            print(f"not set: {e}", file=sys.stderr)
            return 2
        print(f"clerk password set ({path.name})", flush=True)
        return 0
    if args.revoke_cert is not None:
        from backend.server import revoke_certificate

        t = revoke_certificate(args.data, args.revoke_cert)
        print(f"revoked the certificate of terminal {t.terminal_id} (site {t.site_id}), "
              f"SHA-256 {t.fingerprint[:16]}…", flush=True)
        return 0

    from backend.server import start_server

    if args.receipt_base_url is not None and not args.receipt_base_url.startswith("https://"):
        parser.error("--receipt-base-url must be an https:// URL")
    server = start_server(
        args.data, host=args.host, port=args.port, terminal_id=args.terminal_id, site_id=args.site_id,
        demo=args.demo, verify_port=args.verify_port, receipt_base_url=args.receipt_base_url,
        worklist_port=args.worklist_port,
    )
    print(f"backend listening on {server.url}", flush=True)
    print(f"  CA:          {server.ca_path}", flush=True)
    print(f"  client cert: {server.client_cert}", flush=True)
    print(f"  client key:  {server.client_key}", flush=True)
    print(f"verify listening on {server.verify_url}", flush=True)
    print(f"worklist listening on {server.worklist_url}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
