"""`kiosk idcard read`: read one resident ID card (or 'I' / 'J' card) from the SAM reader.

Exit codes: 0 read · 2 no reader answering, or no card placed in time · 4 unreadable, invalid data,
expired or unsupported. Personal fields are masked unless --reveal.

    python -m kiosk.cli.idcard read --port /dev/pts/3 [--baud 115200] [--json] [--reveal]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date

from api.privacy import mask_id, mask_name
from devices.idcard import IdCardData, IdCardFailed, IdCardFault, SerialIdCardReader
from devices.sam_frames import LONG_TERM

EXIT_OK, EXIT_NO_READER, EXIT_BAD_CARD = 0, 2, 4
DEFAULT_PORT = "/dev/kiosk-idcard"  # the udev name; override with --port or KIOSK_IDCARD_PORT

_FAULT_ZH = {
    IdCardFault.NO_DEVICE: "读卡器没有应答，请检查电源和连接线",
    IdCardFault.NO_CARD: "读卡器上没有证件，请把证件平放在感应区",
    IdCardFault.UNREADABLE: "证件无法读取，请重新放置证件",
    IdCardFault.INVALID_DATA: "证件信息校验不通过",
    IdCardFault.EXPIRED: "证件已过期",
    IdCardFault.UNSUPPORTED: "读卡器不支持该读卡命令",
}

_TYPE_ZH = {"resident": "居民身份证", "foreign_permanent": "外国人永久居留身份证", "hk_mo_tw": "港澳台居民居住证"}


def _iso(value: date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


def _mask_text(text: str, keep: int) -> str:
    return text[:keep] + "*" * min(8, max(0, len(text) - keep)) if text else ""


def card_to_dict(card: IdCardData, reveal: bool = False) -> dict:
    """The CLI's JSON object. Masked by default: the number and birth date say the same thing."""
    d = {
        "card_type": card.card_type.value,
        "name": card.name if reveal else mask_name(card.name),
        "gender": card.gender,
        "gender_name": card.gender_name,
        "nation": card.nation_face,
        "nation_code": None if card.nation is None else f"{card.nation:02d}",
        "birth_date": card.birth_date.isoformat() if reveal else f"{card.birth_date.year}-**-**",
        "address": card.address if reveal else _mask_text(card.address, 6),
        "id_number": card.id_number if reveal else mask_id(card.id_number),
        "issuer": card.issuer,
        "valid_from": card.valid_from.isoformat(),
        "valid_to": _iso(card.valid_to),
    }
    if card.card_type.value == "foreign_permanent":
        d.update(
            english_name=card.english_name if reveal else _mask_text(card.english_name, 1),
            nationality=card.nationality,
            card_version=card.card_version,
        )
    if card.card_type.value == "hk_mo_tw":
        d.update(
            pass_number=card.pass_number if reveal else mask_id(card.pass_number),
            issue_count=card.issue_count,
        )
    return d


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("idcard", help="resident ID card reader tools")
    sub = p.add_subparsers(dest="idcard_cmd", required=True)
    _add_read_args(sub.add_parser("read", help="read one card and print it"))
    return p


def _add_read_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("--port", default=None, help=f"serial port (default $KIOSK_IDCARD_PORT or {DEFAULT_PORT})")
    r.add_argument("--baud", type=int, default=115200)
    r.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a card")
    r.add_argument("--reveal", action="store_true", help="print full name, number and address")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    port = args.port or os.environ.get("KIOSK_IDCARD_PORT") or DEFAULT_PORT
    reader = SerialIdCardReader(port, baudrate=args.baud)
    result = reader.read_once(timeout=args.timeout)
    if isinstance(result, IdCardFailed):
        code = EXIT_NO_READER if result.fault in (IdCardFault.NO_DEVICE, IdCardFault.NO_CARD) else EXIT_BAD_CARD
        print(f"身份证读卡：{_FAULT_ZH[result.fault]}（{result.fault.value}: {result.detail}）", file=sys.stderr)
        if result.data is not None:  # expired: still show whose card it is
            _print(args, {**card_to_dict(result.data, args.reveal), "expired": True})
        return code
    _print(args, {**card_to_dict(result, args.reveal), "expired": False})
    return EXIT_OK


def _print(args: argparse.Namespace, d: dict) -> None:
    if args.json:
        print(json.dumps(d, ensure_ascii=False))
        return
    labels = {
        "card_type": "证件类型", "name": "姓名", "gender_name": "性别", "nation": "民族",
        "birth_date": "出生日期", "address": "住址", "id_number": "证件号码", "issuer": "签发机关",
        "valid_from": "有效期起", "valid_to": "有效期止", "english_name": "英文姓名",
        "nationality": "国籍", "pass_number": "通行证号码", "issue_count": "签发次数",
    }
    for key, label in labels.items():
        if key in d and d[key] not in ("", None):
            value = "长期" if d[key] == LONG_TERM else _TYPE_ZH.get(d[key], d[key]) if key == "card_type" else d[key]
            print(f"{label}：{value}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kiosk.cli.idcard")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_read_args(sub.add_parser("read", help="read one card and print it"))
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
