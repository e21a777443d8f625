"""`kiosk printer test`: check the paper, print a sample receipt, report.

Exit codes: 0 printed · 1 printer error or port held by another program · 2 no printer answering · 5 out of paper (only the status
query was sent when the roll was empty before printing).

    python -m kiosk.cli.printer test --port /dev/pts/3 [--profile raster-qr] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime

from devices.base import DeviceStatus, PaperStatus, PrintOutcome
from devices.printer import SerialPrinter
from kiosk.receipts import DEFAULT_PROFILE, PROFILES, Receipt, render_escpos

EXIT_OK, EXIT_ERROR, EXIT_NO_PRINTER, EXIT_PAPER_OUT = 0, 1, 2, 5
DEFAULT_PORT = "/dev/kiosk-printer"  # the udev name (systemd/); override with --port or KIOSK_PRINTER_PORT

_PAPER_ZH = {
    PaperStatus.FULL: "充足",
    PaperStatus.LOW: "即将用完，请准备新纸卷",
    PaperStatus.OUT: "缺纸，请装入新纸卷",
    PaperStatus.UNKNOWN: "未知",
}
_DEVICE_ZH = {
    DeviceStatus.ONLINE: "在线",
    DeviceStatus.NO_DEVICE: "找不到打印机端口，请检查连接线",
    DeviceStatus.OFFLINE: "没有应答，请检查电源和连接线",
    DeviceStatus.HARDWARE_ERROR: "应答异常，请检查打印机",
    DeviceStatus.BUSY: "端口被其他程序占用（自助机程序是否正在运行？）",
}


def sample_receipt(now: datetime | None = None) -> Receipt:
    """Fictional data only: a test page must never carry a real person."""
    return Receipt(
        site_name="示范镇人社服务站",
        terminal_id="TEST-0000",
        printed_at=now or datetime.now().replace(second=0, microsecond=0),
        service="打印机测试",
        holder_name_masked="测*试",
        holder_id_masked="0000**********0000",
        lines=[("测试项目", "中文、粗体、二维码"), ("结果", "如能看清本页即正常")],
        qr_url="https://example.cn/kiosk/printer-test",
        footer="扫码验证",
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("printer", help="receipt printer tools")
    sub = p.add_subparsers(dest="printer_cmd", required=True)
    _add_test_args(sub.add_parser("test", help="check paper and print a sample receipt"))
    return p


def _add_test_args(t: argparse.ArgumentParser) -> None:
    t.add_argument(
        "--port", default=None, help=f"serial port (default $KIOSK_PRINTER_PORT or {DEFAULT_PORT})"
    )
    t.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    t.add_argument("--baudrate", type=int, default=115200)
    t.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the status answer")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    port = args.port or os.environ.get("KIOSK_PRINTER_PORT") or DEFAULT_PORT
    printer = SerialPrinter(port, baudrate=args.baudrate, profile=args.profile, timeout=args.timeout)
    report: dict = {"port": port, "profile": args.profile}
    try:
        before = printer.status()
        report.update(device=before.device.value, paper_before=before.paper.value)
        if before.device is not DeviceStatus.ONLINE:
            no_answer = before.device in (DeviceStatus.NO_DEVICE, DeviceStatus.OFFLINE)
            code = EXIT_NO_PRINTER if no_answer else EXIT_ERROR
            report.update(outcome="not_printed")
            return _finish(
                args, report, code, f"打印机：{_DEVICE_ZH.get(before.device, before.device.value)}"
            )
        if before.paper is PaperStatus.OUT:
            report.update(outcome=PrintOutcome.PAPER_OUT.value, paper=PaperStatus.OUT.value)
            return _finish(
                args, report, EXIT_PAPER_OUT, f"打印机：在线；纸张：{_PAPER_ZH[PaperStatus.OUT]}；未打印"
            )
        data = render_escpos(sample_receipt(), args.profile)
        res = printer.print_receipt(data)
        report.update(outcome=res.outcome.value, paper=res.paper.value, bytes=len(data))
        if res.outcome is PrintOutcome.PRINTED:
            code, msg = EXIT_OK, f"已打印测试回执（{len(data)} 字节）；纸张：{_PAPER_ZH[res.paper]}"
        elif res.outcome is PrintOutcome.PAPER_OUT:
            code, msg = EXIT_PAPER_OUT, f"打印中缺纸：{_PAPER_ZH[PaperStatus.OUT]}"
        elif res.outcome is PrintOutcome.OFFLINE:
            code, msg = EXIT_NO_PRINTER, "打印机没有应答，回执可能未打印"
        else:
            code, msg = EXIT_ERROR, "打印机出错，回执可能未打印"
        return _finish(args, report, code, msg)
    finally:
        printer.close()


def _finish(args: argparse.Namespace, report: dict, code: int, message: str) -> int:
    report["exit"] = code
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(message)
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kiosk.cli.printer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    # Standalone: accept both `test ...` and `printer test ...`.
    add_parser(sub)
    _add_test_args(sub.add_parser("test", help="same as `printer test`"))
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
