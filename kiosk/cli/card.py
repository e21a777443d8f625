"""`kiosk card read`: read one social-security card through PC/SC and print it.

Exit codes: 0 read · 2 no reader or no card (or pulled out) · 3 the card needs the terminal's security
module (PSAM) · 4 unreadable, not a social-security card, invalid data or timeout. Personal fields are
masked unless --reveal.

    python -m kiosk.cli.card read [--reader NAME] [--json] [--reveal]
"""

from __future__ import annotations

import argparse
import json
import sys

from api.privacy import mask_id, mask_name
from devices.base import CardFault, CardReadFailed, SSCardData
from devices.sscard import PcscCardReader

EXIT_OK, EXIT_NO_CARD, EXIT_NEEDS_SAM, EXIT_BAD_CARD = 0, 2, 3, 4

_EXIT = {
    CardFault.NO_READER: EXIT_NO_CARD,
    CardFault.NO_CARD: EXIT_NO_CARD,
    CardFault.REMOVED: EXIT_NO_CARD,
    CardFault.NEEDS_SAM: EXIT_NEEDS_SAM,
}

_FAULT_ZH = {
    CardFault.NO_READER: "找不到社保卡读卡器（或 pcscd 服务未运行）",
    CardFault.NO_CARD: "读卡器里没有卡，请插入社保卡",
    CardFault.REMOVED: "读卡过程中卡被拔出，请重新插卡",
    CardFault.UNREADABLE: "卡片无法读取，请擦拭芯片后重新插卡",
    CardFault.NOT_SSCARD: "这不是社保卡（没有社保应用）",
    CardFault.NEEDS_SAM: "这张三代社保卡需要终端安全模块（PSAM）才能读取",
    CardFault.INVALID_DATA: "卡内信息校验不通过",
    CardFault.TIMEOUT: "读卡超时",
}

_LABELS = {
    "name": "姓名", "ssn": "社会保障号码", "card_number": "卡号", "card_version": "规范版本",
    "gender": "性别", "birth_date": "出生日期", "issue_date": "发卡日期", "expiry_date": "有效期至",
    "region_code": "发卡地区", "nation": "民族代码", "birth_place": "出生地", "card_type": "卡类别",
    "init_org": "初始化机构", "card_id": "卡识别码",
}


def card_to_dict(card: SSCardData, reveal: bool = False) -> dict:
    """The CLI's JSON object. Masked by default: the number and the birth date say the same thing."""

    def iso(d):
        return d.isoformat() if d else None

    return {
        "name": card.name if reveal else mask_name(card.name),
        "ssn": card.ssn if reveal else mask_id(card.ssn),
        "card_number": card.card_number if reveal else mask_id(card.card_number),
        "birth_date": iso(card.birth_date) if reveal or not card.birth_date else f"{card.birth_date.year}-**-**",
        "issue_date": iso(card.issue_date),
        "expiry_date": iso(card.expiry_date),
        "card_version": card.card_version,
        "generation": card.generation,
        "gender": card.gender,
        "region_code": card.region_code,
        "nation": card.nation,
        "birth_place": card.birth_place,
        "card_type": card.card_type,
        "init_org": card.init_org,
        "card_id": card.card_id if reveal else mask_id(card.card_id),
        "masked": not reveal,
    }


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("card", help="social-security card reader tools")
    sub = p.add_subparsers(dest="card_cmd", required=True)
    _add_read_args(sub.add_parser("read", help="read one card and print it"))
    return p


def _add_read_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("--reader", default=None, help="PC/SC reader name (default: the first holding a card)")
    r.add_argument("--timeout", type=float, default=5.0)
    r.add_argument("--reveal", action="store_true", help="print full name and numbers")
    r.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = PcscCardReader(reader_name=args.reader).read(timeout=args.timeout)
    if isinstance(result, CardReadFailed):
        print(f"社保卡读卡：{_FAULT_ZH[result.fault]}（{result.fault.value}: {result.detail}）", file=sys.stderr)
        return _EXIT.get(result.fault, EXIT_BAD_CARD)
    d = card_to_dict(result.data, args.reveal)
    if args.json:
        print(json.dumps(d, ensure_ascii=False))
    else:
        for key, label in _LABELS.items():
            if d.get(key) not in ("", None):
                print(f"{label}：{d[key]}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kiosk.cli.card")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_read_args(sub.add_parser("read", help="read one card and print it"))
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
