"""Receipt bytes: exact ESC/POS for a fixed receipt, spelled out command by command (docs/protocols.md §3)."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
import zxingcpp
from PIL import Image, ImageOps

from kiosk.receipts import (
    PROFILES,
    PrinterProfile,
    Receipt,
    display_width,
    get_profile,
    receipt_qr_png,
    render_escpos,
)

URL = "https://si.example.cn/r/7Q2K9XW4TB"
RECEIPT = Receipt(
    site_name="示范镇人社服务站",
    terminal_id="T-370102-0001",
    printed_at=datetime(2024, 5, 6, 9, 30),
    service="养老金查询",
    holder_name_masked="王*兰",
    holder_id_masked="3701**********0527",
    lines=[("参保险种", "城乡居民基本养老保险"), ("月领取金额", "238.50元")],
    qr_url=URL,
)

ESC_INIT = b"\x1b\x40"
FS_CHINESE_ON = b"\x1c\x26"
FS_CHINESE_OFF = b"\x1c\x2e"
GS_SIZE_2X2, GS_SIZE_1X1 = b"\x1d\x21\x11", b"\x1d\x21\x00"
BOLD_ON, BOLD_OFF = b"\x1b\x45\x01", b"\x1b\x45\x00"
ALIGN_LEFT, ALIGN_CENTER = b"\x1b\x61\x00", b"\x1b\x61\x01"
FEED_6_CUT = b"\x1b\x64\x06" + b"\x1d\x56\x00"  # ESC d 6, GS V 0 (full cut)


def gb(text: str) -> bytes:
    return text.encode("gb18030") + b"\n"


def row(label: str, value: str, pad: int) -> bytes:
    return gb(f"{label}：{' ' * pad}{value}")


def gs_k(fn: int, params: bytes) -> bytes:
    """GS ( k pL pH cn=49 fn params."""
    body = bytes([49, fn]) + params
    return b"\x1d(k" + len(body).to_bytes(2, "little") + body


RULE = gb("-" * 48)
# Golden bytes for the default (80 mm, native QR) profile. Padding counts: 48 columns, hanzi count two.
GOLDEN_NATIVE = b"".join(
    [
        ESC_INIT,
        FS_CHINESE_ON,
        GS_SIZE_2X2 + BOLD_ON + ALIGN_CENTER,
        gb("示范镇人社服务站"),
        GS_SIZE_1X1 + BOLD_OFF,
        gb("自助服务回执"),
        ALIGN_LEFT,
        RULE,
        row("业务", "养老金查询", 32),
        row("姓名", "王*兰", 37),
        row("证件", "3701**********0527", 24),
        row("时间", "2024-05-06 09:30", 26),
        row("终端", "T-370102-0001", 29),
        RULE,
        BOLD_ON,
        row("参保险种", "城乡居民基本养老保险", 18),
        row("月领取金额", "238.50元", 28),
        BOLD_OFF,
        RULE,
        ALIGN_CENTER,
        gs_k(65, b"\x32\x00"),  # model 2
        gs_k(67, b"\x06"),  # module 6 dots
        gs_k(69, b"\x31"),  # error correction M
        gs_k(80, b"\x30" + URL.encode("ascii")),  # store the URL
        gs_k(81, b"\x30"),  # print it
        b"\n",
        gb("扫码验证"),
        ALIGN_LEFT,
        FS_CHINESE_OFF,
        FEED_6_CUT,
    ]
)


def test_native_receipt_is_exactly_the_golden_bytes():
    assert render_escpos(RECEIPT, "native-qr") == GOLDEN_NATIVE
    assert render_escpos(RECEIPT) == GOLDEN_NATIVE  # native-qr is the default
    assert len(GOLDEN_NATIVE) <= 1024  # goal: ≤ 1 KB with native QR


def test_golden_means_what_the_spec_says():
    data = render_escpos(RECEIPT, "native-qr")
    assert data.startswith(bytes.fromhex("1b40 1c26"))
    assert "王*兰".encode("gb18030") == bytes.fromhex("cdf5 2a c0bc")
    assert bytes.fromhex("cdf52ac0bc") in data
    store = bytes.fromhex("1d286b") + (len(URL) + 3).to_bytes(2, "little") + b"\x31\x50\x30" + URL.encode()
    assert store in data
    assert data.index(store) < data.index(bytes.fromhex("1d286b0300315130"))  # stored before printed
    assert data.endswith(bytes.fromhex("1d5600"))
    assert data.rindex(FS_CHINESE_OFF) > data.rindex(b"\x1d(k")  # Chinese mode off only after all text
    assert "王秀兰".encode("gb18030") not in data


def test_every_line_fits_the_paper():
    for prof in PROFILES.values():
        data = render_escpos(RECEIPT, prof)
        lines = _text_lines(data)
        assert len(lines) > 10
        for line, cols in lines:
            assert cols <= prof.columns, (prof.name, line)


def _text_lines(data: bytes) -> list[tuple[str, int]]:
    """(text, columns it takes) per printed line, as the twin's interpreter reads the bytes."""
    from sim.printer_twin import LineFeed, Text, parse_escpos

    lines, cur, cols = [], "", 0
    for el in parse_escpos(data).elements:
        if isinstance(el, Text):
            cur += el.text
            cols += display_width(el.text) * el.style.width
        elif isinstance(el, LineFeed):
            lines.append((cur, cols))
            cur, cols = "", 0
    return lines


def test_long_value_moves_to_its_own_right_aligned_line():
    r = Receipt(**{**RECEIPT.__dict__, "lines": [("备注", "城乡居民基本养老保险待遇资格认证已于本月完成")]})
    lines = [t for t, _ in _text_lines(render_escpos(r, "native-qr-58"))]
    i = lines.index("备注：")
    assert lines[i + 1] == "城乡居民基本养老保险待遇资格认证"  # 16 hanzi fill 58 mm paper
    assert lines[i + 2] == " " * 20 + "已于本月完成"  # right-aligned


@pytest.mark.parametrize("name", ["raster-qr", "raster-qr-58"])
def test_raster_profile_sends_a_decodable_gs_v_0_image(name):
    prof = PROFILES[name]
    data = render_escpos(RECEIPT, prof)
    assert b"\x1d(k" not in data  # no native QR commands
    i = data.index(b"\x1dv0\x00")
    wb, h = int.from_bytes(data[i + 4 : i + 6], "little"), int.from_bytes(data[i + 6 : i + 8], "little")
    assert wb * 8 <= prof.width_dots
    bits = data[i + 8 : i + 8 + wb * h]
    assert len(bits) == wb * h
    # ESC/POS: a set bit is a black dot; PIL's "1" mode reads a set bit as white.
    img = ImageOps.invert(Image.frombytes("1", (wb * 8, h), bits).convert("L"))
    img = ImageOps.expand(img, border=20, fill=255)
    assert [r.text for r in zxingcpp.read_barcodes(img)] == [URL]
    assert data[i - 3 : i] == ALIGN_CENTER
    assert data.startswith(ESC_INIT + FS_CHINESE_ON) and data.endswith(FEED_6_CUT)


def test_native_is_much_smaller_than_raster():
    assert len(render_escpos(RECEIPT, "native-qr")) * 4 < len(render_escpos(RECEIPT, "raster-qr"))


def test_render_is_pure_and_deterministic():
    assert render_escpos(RECEIPT, "raster-qr") == render_escpos(RECEIPT, "raster-qr")


def test_profiles():
    assert get_profile(None).name == "native-qr"
    assert get_profile("raster-qr").qr == "raster"
    assert {p.width_dots for p in PROFILES.values()} == {384, 576}
    custom = PrinterProfile("x", width_dots=384)
    assert get_profile(custom) is custom
    with pytest.raises(ValueError, match="unknown printer profile"):
        get_profile("laser")


def test_receipt_without_lines_or_qr():
    r = Receipt(**{**RECEIPT.__dict__, "lines": [], "qr_url": ""})
    data = render_escpos(r)
    assert b"\x1d(k" not in data and b"\x1dv0" not in data
    # no code, no "scan to verify" under where it would be (an offline filing's receipt carries its local number)
    assert gb("扫码验证") not in data and data.endswith(FEED_6_CUT)


def test_rare_characters_are_encoded_not_dropped():
    r = Receipt(**{**RECEIPT.__dict__, "holder_name_masked": "䶮*𠀀"})  # ext-A and ext-B: 4-byte GB18030
    assert "䶮*𠀀".encode("gb18030") in render_escpos(r)


def test_qr_png_for_the_screen_decodes_to_the_url():
    png = receipt_qr_png(URL)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    assert [r.text for r in zxingcpp.read_barcodes(img)] == [URL]
