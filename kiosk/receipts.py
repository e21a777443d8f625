"""Receipts: what a resident takes home, as ESC/POS bytes (pure) and as an on-screen QR PNG.

Bytes are built with python-escpos's Dummy printer (docs/protocols.md section 3); building is separate
from the transport (devices/printer.py sends them).
"""

from __future__ import annotations

import io
import os
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# python-escpos parses its capabilities YAML on every import (~0.4 s of each start) unless its pickle
# cache lives somewhere lasting; by default it makes a new temp folder each time and leaves it behind.
_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kiosk-escpos"
try:
    _cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(_cache))
except OSError:
    pass  # read-only home: escpos falls back to a temp folder

import qrcode  # noqa: E402
import qrcode.constants  # noqa: E402
from escpos.constants import QR_ECLEVEL_H, QR_ECLEVEL_L, QR_ECLEVEL_M, QR_ECLEVEL_Q  # noqa: E402
from escpos.image import EscposImage  # noqa: E402
from escpos.printer import Dummy  # noqa: E402

FS_CHINESE_ON = b"\x1c\x26"  # FS &: python-escpos never sends it
FS_CHINESE_OFF = b"\x1c\x2e"  # FS .

_ESCPOS_EC = {"L": QR_ECLEVEL_L, "M": QR_ECLEVEL_M, "Q": QR_ECLEVEL_Q, "H": QR_ECLEVEL_H}
_QRCODE_EC = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}


@dataclass(frozen=True)
class PrinterProfile:
    name: str
    qr: str = "native"  # "native" (GS ( k) or "raster" (GS v 0)
    width_dots: int = 576  # 80 mm paper: 576 dots; 58 mm: 384
    qr_module: int = 6  # dots per QR module
    qr_ec: str = "M"

    @property
    def columns(self) -> int:
        """Font A half-width columns (12 dots each); a hanzi takes two."""
        return self.width_dots // 12


PROFILES: dict[str, PrinterProfile] = {
    p.name: p
    for p in (
        PrinterProfile("native-qr"),
        PrinterProfile("raster-qr", qr="raster"),
        PrinterProfile("native-qr-58", width_dots=384, qr_module=5),
        PrinterProfile("raster-qr-58", qr="raster", width_dots=384, qr_module=5),
    )
}
DEFAULT_PROFILE = "native-qr"


def get_profile(profile: PrinterProfile | str | None) -> PrinterProfile:
    if isinstance(profile, PrinterProfile):
        return profile
    name = profile or DEFAULT_PROFILE
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown printer profile {name!r}; known: {', '.join(PROFILES)}") from None


@dataclass(frozen=True)
class Receipt:
    site_name: str
    terminal_id: str
    printed_at: datetime
    service: str  # e.g. 养老金查询
    holder_name_masked: str
    holder_id_masked: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # result label / value
    qr_url: str = ""
    footer: str = "扫码验证"  # printed under the QR code only


def display_width(text: str) -> int:
    """Columns a string takes on the printer: wide (CJK, full-width) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wrap(text: str, columns: int) -> list[str]:
    out, cur, width = [], "", 0
    for c in text:
        w = display_width(c)
        if width + w > columns:
            out.append(cur)
            cur, width = "", 0
        cur += c
        width += w
    out.append(cur)
    return out


def _label_value(label: str, value: str, columns: int) -> list[str]:
    """`label：   value` on one line when it fits, else value right-aligned on the next line(s)."""
    head = f"{label}："
    gap = columns - display_width(head) - display_width(value)
    if gap >= 1:
        return [head + " " * gap + value]
    rows = _wrap(head, columns)
    for part in _wrap(value, columns):
        rows.append(" " * (columns - display_width(part)) + part)
    return rows


def _text(p: Dummy, line: str) -> None:
    # Hand-written: python-escpos's magic encoder switches code pages (ESC t) for lines without
    # hanzi but with full-width punctuation, which corrupts output in Chinese mode; GB18030 always.
    p._raw(line.encode("gb18030", errors="replace") + b"\n")


def render_escpos(receipt: Receipt, profile: PrinterProfile | str | None = None) -> bytes:
    """The whole receipt as ESC/POS bytes. Pure: same receipt and profile → same bytes."""
    prof = get_profile(profile)
    cols = prof.columns
    p = Dummy()
    p.hw("INIT")  # ESC @
    p._raw(FS_CHINESE_ON)

    p.set(align="center", bold=True, custom_size=True, width=2, height=2)  # GS ! 0x11, ESC E 1, ESC a 1
    for row in _wrap(receipt.site_name, cols // 2):
        _text(p, row)
    p.set(bold=False, custom_size=True, width=1, height=1)
    _text(p, "自助服务回执")
    p.set(align="left")
    _text(p, "-" * cols)
    for label, value in (
        ("业务", receipt.service),
        ("姓名", receipt.holder_name_masked),
        ("证件", receipt.holder_id_masked),
        ("时间", receipt.printed_at.strftime("%Y-%m-%d %H:%M")),
        ("终端", receipt.terminal_id),
    ):
        for row in _label_value(label, value, cols):
            _text(p, row)
    _text(p, "-" * cols)
    if receipt.lines:
        p.set(bold=True)
        for label, value in receipt.lines:
            for row in _label_value(label, value, cols):
                _text(p, row)
        p.set(bold=False)
        _text(p, "-" * cols)

    if receipt.qr_url:
        p.set(align="center")
        if prof.qr == "native":
            p.qr(receipt.qr_url, ec=_ESCPOS_EC[prof.qr_ec], size=prof.qr_module, native=True)
            p._raw(b"\n")
        else:
            # Hand-built GS v 0 instead of qr(native=False)/image(): those print a warning to stdout when
            # the capability profile has no paper width; GS v 0 follows ESC a, so the code is centred.
            im = EscposImage(_qr_image(receipt.qr_url, prof.qr_module, prof.qr_ec, border=1))
            size = im.width_bytes.to_bytes(2, "little") + im.height.to_bytes(2, "little")
            p._raw(b"\x1dv0\x00" + size + im.to_raster_format())
        if receipt.footer:  # the code's caption: a receipt without a code (filed offline) has none
            _text(p, receipt.footer)
        p.set(align="left")

    p._raw(FS_CHINESE_OFF)  # leave the printer in its power-on single-byte mode for whatever comes next
    p.cut()  # ESC d 6, GS V 0
    return p.output


def _qr_image(url: str, box: int, ec: str, border: int):
    qr = qrcode.QRCode(version=None, box_size=box, border=border, error_correction=_QRCODE_EC[ec])
    qr.add_data(url)
    qr.make(fit=True)
    return qr.make_image(fill_color="black", back_color="white").get_image().convert("1")


def receipt_qr_png(url: str, box_size: int = 10) -> bytes:
    """The receipt's QR as a PNG, for the screen when the printer cannot print."""
    buf = io.BytesIO()
    _qr_image(url, box_size, "M", border=4).save(buf, format="PNG")
    return buf.getvalue()
