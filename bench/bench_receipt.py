"""Receipt size and wire time per printer profile, native vs raster QR.

    PYTHONPATH=. .venv/bin/python bench/bench_receipt.py

Wire time = bytes × 10 bits (8N1) / baud; "paced pty" = SerialPrinter.print_receipt (status, send,
drain, status) against the twin reading no faster than the baud rate (median of 3); render = building
the bytes (median of 20). References: goal ≤ 1 KB with native QR; the reference machine measured
python-escpos's Dummy at 177 B (bare native-QR receipt) / ~4.6 KB (raster QR); docs/protocols.md §3: a
200×200-dot raster QR is ~5 KB, ~0.45 s at 115200 baud.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk.receipts import PROFILES, Receipt, render_escpos  # noqa: E402

BAUD = 115200
RECEIPT = Receipt(
    site_name="示范镇人社服务站",
    terminal_id="T-370102-0001",
    printed_at=datetime(2024, 5, 6, 9, 30),
    service="养老金查询",
    holder_name_masked="王*兰",
    holder_id_masked="3701**********0527",
    lines=[("参保险种", "城乡居民基本养老保险"), ("待遇状态", "领取中"), ("月领取金额", "238.50元")],
    qr_url="https://si.example.cn/r/7Q2K9XW4TB",
)
REFERENCE = {
    "native": "goal ≤ 1024 B; Dummy bare receipt 177 B",
    "raster": "Dummy raster ~4.6 KB; PROTOCOLS 200×200 dots ~5 KB / ~450 ms",
}


def render_ms(profile: str, runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        render_escpos(RECEIPT, profile)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def pty_ms(data: bytes, runs: int = 3) -> float:
    """Status, send, drain, status through SerialPrinter to the twin reading at the baud rate."""
    import tempfile

    from devices.printer import SerialPrinter
    from sim.printer_twin import PrinterTwin

    with tempfile.TemporaryDirectory() as out, PrinterTwin(out, baudrate=BAUD, pace=True) as twin:
        printer = SerialPrinter(twin.port, BAUD, settle=0)
        times = []
        try:
            for _ in range(runs):
                t0 = time.perf_counter()
                printer.print_receipt(data)
                times.append((time.perf_counter() - t0) * 1000)
        finally:
            printer.close()
    return statistics.median(times)


def main() -> None:
    rows = []
    for name, prof in PROFILES.items():
        data = render_escpos(RECEIPT, prof)
        n = len(data)
        rows.append(
            (
                name,
                f"{prof.width_dots}",
                prof.qr,
                f"{n}",
                f"{n * 10 / BAUD * 1000:.1f}",
                f"{pty_ms(data):.1f}",
                f"{render_ms(name):.2f}",
                REFERENCE[prof.qr],
            )
        )
    head = ("profile", "dots", "QR", "bytes", f"wire ms @{BAUD}", "paced pty ms", "render ms", "reference")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
