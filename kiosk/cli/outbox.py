"""`kiosk outbox list|sync`: what waits in the terminal's outbox, and drain it now.

    kiosk outbox list [--config F] [--json]   pending items, masked: local number, service, created, attempts,
                                              last error, state (never a name or an ID number)
    kiosk outbox sync [--config F]            drain now

Exit codes of sync: 0 the outbox is empty · 75 the backend cannot be reached, or several items in a row failed
(try again later) · 1 otherwise (items the backend refused for good, or items that failed on their own and wait
for their next try) · 78 configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kiosk.config import ConfigError

EXIT_OK, EXIT_OTHER, EXIT_UNREACHABLE = 0, 1, 75
DEFAULT_CONFIG = "/etc/kiosk/kiosk.toml"

_STATE_ZH = {"pending": "待上传", "failed_permanently": "被拒绝（不再重试）", "sent": "已上传"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("outbox", help="the terminal's outbox of filings and ratings")
    sub = p.add_subparsers(dest="outbox_cmd", required=True)
    ls = sub.add_parser("list", help="pending items, masked")
    ls.add_argument("--config", default=DEFAULT_CONFIG)
    ls.add_argument("--json", action="store_true")
    sy = sub.add_parser("sync", help="send everything now")
    sy.add_argument("--config", default=DEFAULT_CONFIG)
    sy.add_argument("--json", action="store_true")
    return p


def _db(cfg) -> Path:
    from kiosk.outbox import DB_NAME

    return Path(cfg.terminal.data_dir) / DB_NAME


def open_outbox(cfg):
    from kiosk.outbox import OutboxKeyError, open_in

    try:
        return open_in(cfg.terminal.data_dir)
    except OutboxKeyError as e:
        raise ConfigError(f"[terminal] data_dir: {e}") from None


def run(args: argparse.Namespace) -> int:
    from kiosk import config

    cfg = config.load(args.config)
    if args.outbox_cmd == "list":
        return _list(cfg, args.json)
    return _sync(cfg, args.json)


def _list(cfg, as_json: bool) -> int:
    db = _db(cfg)
    if not db.exists():  # nothing was ever queued: do not make a key and a database just to say so
        rows: list[dict] = []
    else:
        with open_outbox(cfg) as outbox:
            rows = [v.as_dict() for v in outbox.pending()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("发件箱为空 (outbox empty)")
        return EXIT_OK
    header = ("本地编号", "事项", "时间", "次数", "状态", "最近错误")
    table = [header] + [
        (r["local_number"], r["service"], r["created"][:19], str(r["attempts"]),
         _STATE_ZH.get(r["state"], r["state"]), r["last_error"] or "") for r in rows
    ]
    for line in table:
        print("  ".join(str(x) for x in line))
    return EXIT_OK


def _sync(cfg, as_json: bool) -> int:
    from kiosk.factory import build_backend
    from kiosk.outbox import sync_once

    db = _db(cfg)
    if not db.exists():
        print(json.dumps({"sent": 0, "remaining": 0, "unreachable": False, "failed": 0}) if as_json
              else "发件箱为空 (outbox empty)")
        return EXIT_OK
    client = build_backend(cfg)
    with open_outbox(cfg) as outbox, client:
        report = sync_once(outbox, client)
    if as_json:
        print(json.dumps({"sent": report.sent, "remaining": report.remaining, "unreachable": report.unreachable,
                          "failed": report.failed, "errors": report.errors}, ensure_ascii=False))
    else:
        print(f"已上传 {report.sent} 件，剩余 {report.remaining} 件（其中被拒绝 {report.failed} 件）"
              f" (sent {report.sent}, remaining {report.remaining}, refused {report.failed})")
        if report.unreachable:
            print("无法连接后台，稍后再试 (backend unreachable: try again later)", file=sys.stderr)
        for e in report.errors[:20]:
            print(f"  {e}", file=sys.stderr)
    if report.remaining == 0:
        return EXIT_OK
    if report.unreachable:
        return EXIT_UNREACHABLE
    return EXIT_OTHER
