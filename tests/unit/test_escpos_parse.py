"""The printer twin's ESC/POS interpreter and the driver's status-byte reading: bytes from outside
must never crash them or hang them (hypothesis), and known commands mean what the spec says."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.base import DeviceStatus, PaperStatus
from devices.printer import interpret_paper_status
from kiosk.receipts import PROFILES, Receipt, render_escpos
from sim.printer_twin import (
    Cut,
    Feed,
    Init,
    LineFeed,
    ParserState,
    QRPrint,
    Raster,
    StatusQuery,
    Text,
    parse_escpos,
    render_png,
)

# Bytes biased towards command introducers and their arguments, so commands actually get parsed.
_interesting = st.sampled_from(
    [
        0x1B,
        0x1C,
        0x1D,
        0x10,
        0x0A,
        0x00,
        0x04,
        0x26,
        0x2E,
        0x28,
        0x6B,
        0x76,
        0x30,
        0x56,
        0x21,
        0x45,
        0x61,
        0x31,
        0x50,
        0x51,
        0xB0,
        0xA1,
        0x81,
        0x39,
        0xFF,
    ]
)
escpos_bytes = st.lists(st.one_of(st.integers(0, 255), _interesting), max_size=400).map(bytes)


def _elements(data: bytes, chunks: list[int]) -> list:
    """Feed data the way the twin does: in pieces, keeping what is not consumed yet."""
    out, buf, state, pos = [], b"", ParserState(), 0
    for size in chunks:
        buf += data[pos : pos + size]
        pos += size
        res = parse_escpos(buf, state, final=False)
        assert 0 <= res.consumed <= len(buf)
        out += res.elements
        buf, state = buf[res.consumed :], res.state
    buf += data[pos:]
    res = parse_escpos(buf, state, final=True)
    assert res.consumed == len(buf)
    return out + res.elements


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(escpos_bytes)
def test_any_bytes_parse_without_error_and_are_all_consumed(data):
    res = parse_escpos(data)
    assert res.consumed == len(data)
    for el in res.elements:
        assert isinstance(el, Init | Text | LineFeed | Feed | QRPrint | Raster | Cut | StatusQuery)


@settings(max_examples=300, deadline=None)
@given(escpos_bytes, st.lists(st.integers(1, 64), max_size=20))
def test_streaming_in_pieces_gives_the_same_elements(data, chunks):
    assert _elements(data, chunks) == parse_escpos(data).elements


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(escpos_bytes)
def test_anything_parsed_can_be_drawn(data):
    img = render_png(parse_escpos(data).elements, 384)
    assert img.width == 384 + 32


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=8))
def test_huge_declared_lengths_do_not_hang_or_allocate(tail):
    # GS v 0 declaring 65535×65535 bytes, GS 8 L declaring 4 GB, GS ( k declaring 64 KB
    for head in (b"\x1dv0\x00\xff\xff\xff\xff", b"\x1d8L\xff\xff\xff\xff", b"\x1d(k\xff\xff"):
        data = head + tail
        assert parse_escpos(data, final=False).consumed == 0  # waits for the rest, like a printer
        assert parse_escpos(data, final=True).consumed == len(data)


_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    site=_text, service=_text, name=_text, label=_text, value=_text, profile=st.sampled_from(sorted(PROFILES))
)
def test_rendered_receipts_round_trip_through_the_interpreter(site, service, name, label, value, profile):
    r = Receipt(
        site,
        "T-1",
        datetime(2024, 1, 2, 3, 4),
        service,
        name,
        "1234**5678",
        [(label, value)],
        "https://example.cn/v/1",
    )
    els = parse_escpos(render_escpos(r, profile)).elements
    text = "".join(e.text for e in els if isinstance(e, Text)).replace(" ", "")
    for field in (service, name, value):
        assert field.replace(" ", "") in text
    assert isinstance(els[0], Init) and isinstance(els[-1], Cut)
    assert all(e.style.chinese for e in els if isinstance(e, Text))
    if PROFILES[profile].qr == "native":
        assert [e.data for e in els if isinstance(e, QRPrint)] == [b"https://example.cn/v/1"]
    else:
        assert [type(e) for e in els if isinstance(e, QRPrint | Raster)] == [Raster]


def test_known_commands():
    data = (
        b"\x1b@\x1c&\x1bE\x01\x1d!\x11\x1ba\x01"
        + "王*兰".encode("gb18030")
        + b"\n\x1c.\x10\x04\x04"
        + b"\x1d(k\x03\x001C\x08\x1d(k\x03\x001E3\x1d(k\x06\x001P0abc\x1d(k\x03\x001Q0"
        + b"\x1dv0\x00\x01\x00\x02\x00\x80\x01"
        + b"\x1bd\x02\x1dV\x42\x03"
    )
    els = parse_escpos(data).elements
    text = els[1]
    assert isinstance(els[0], Init)
    assert text.text == "王*兰" and text.style.bold and text.style.chinese
    assert (text.style.width, text.style.height, text.style.align) == (2, 2, 1)
    assert isinstance(els[2], LineFeed)
    assert els[3] == StatusQuery(4)
    qr = els[4]
    assert (qr.data, qr.module, qr.ec) == (b"abc", 8, "H") and not qr.style.chinese
    assert isinstance(els[5], Raster) and (els[5].width_bytes, els[5].height, els[5].data) == (
        1,
        2,
        b"\x80\x01",
    )
    assert els[6] == Feed(60)
    assert els[7] == Cut(partial=True)


def test_chinese_mode_off_decodes_single_bytes():
    els = parse_escpos(b"\x1c&\xcd\xf5\x1c.\xcd\xf5").elements
    assert els[0].text == "王"
    assert els[1].text == "═⌡"  # code page 437, not GB18030


def test_unknown_and_garbage_bytes_are_skipped():
    # an unknown ESC/GS x drops the two bytes; stray control bytes and DEL drop themselves
    els = parse_escpos(b"\x1b\xfeAB\x1d\xfeCD\x01\x02\x7fEF\n").elements
    assert "".join(e.text for e in els if isinstance(e, Text)) == "ABCDEF"


# -------------------------------------------------- driver: DLE EOT 4 paper-sensor byte


@pytest.mark.parametrize(
    "byte,paper",
    [
        (0x12, PaperStatus.FULL),
        (0x1E, PaperStatus.LOW),  # bits 2–3: near end (Epson, python-escpos)
        (0x16, PaperStatus.LOW),  # bit 2 only
        (0x1A, PaperStatus.LOW),  # bit 3 only: the single-source "paper end" reading; majority says near end
        (0x72, PaperStatus.OUT),  # bits 5–6: paper end
        (0x32, PaperStatus.OUT),
        (0x52, PaperStatus.OUT),
        (0x7E, PaperStatus.OUT),  # near end and end: end wins
    ],
)
def test_paper_status_byte(byte, paper):
    st_ = interpret_paper_status(byte)
    assert (st_.device, st_.paper) == (DeviceStatus.ONLINE, paper)
    assert st_.can_print is (paper is not PaperStatus.OUT)


def test_every_status_byte_is_interpreted_without_raising():
    seen = {interpret_paper_status(b) for b in range(256)}
    assert {s.paper for s in seen} == {
        PaperStatus.FULL,
        PaperStatus.LOW,
        PaperStatus.OUT,
        PaperStatus.UNKNOWN,
    }
    for b in (0x00, 0xFF, 0x13, 0x92, 0x10, 0x02):  # fixed bits wrong: not a status answer
        assert interpret_paper_status(b).device is DeviceStatus.HARDWARE_ERROR
