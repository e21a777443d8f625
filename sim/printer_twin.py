"""Receipt-printer twin: an ESC/POS printer on the far end of a pseudo-terminal.

It answers real-time status (DLE EOT n) with its paper state, interprets the ESC/POS it receives
(docs/protocols.md section 3) and renders each receipt to a PNG at every cut, so a person can look at it
and a test can decode its QR code. `parse_escpos` (bytes → elements) is pure and never raises.

    python -m sim.printer_twin --out DIR     # prints the pty path, runs until Ctrl-C
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import queue
import select
import subprocess
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

ESC, FS, GS, DLE = 0x1B, 0x1C, 0x1D, 0x10

# Real-time status answers for DLE EOT 4 (Epson; python-escpos constants).
PAPER_BYTES = {"full": 0x12, "low": 0x1E, "out": 0x72}
STATUS_OK = 0x12  # DLE EOT 1/2/3: fixed bits only, no error

MAX_RASTER_DOTS = 4096  # larger declared images are consumed but not drawn (bounded memory)
MAX_RASTER_ROWS = 8192


# ---------------------------------------------------------------- elements (parser output)


@dataclass(frozen=True)
class Style:
    bold: bool = False
    width: int = 1  # character size multipliers (GS ! / ESC ! / FS !)
    height: int = 1
    align: int = 0  # 0 left, 1 centre, 2 right
    chinese: bool = False  # FS & on, FS . off


@dataclass(frozen=True)
class Init:
    pass


@dataclass(frozen=True)
class Text:
    text: str
    style: Style


@dataclass(frozen=True)
class LineFeed:
    style: Style  # alignment applies to the line being printed


@dataclass(frozen=True)
class Feed:
    dots: int


@dataclass(frozen=True)
class QRPrint:
    data: bytes
    module: int
    ec: str
    style: Style


@dataclass(frozen=True)
class Raster:
    width_bytes: int
    height: int
    data: bytes = field(repr=False)
    scale_x: int
    scale_y: int
    style: Style


@dataclass(frozen=True)
class Cut:
    partial: bool


@dataclass(frozen=True)
class StatusQuery:
    n: int


Element = Init | Text | LineFeed | Feed | QRPrint | Raster | Cut | StatusQuery


@dataclass(frozen=True)
class ParserState:
    style: Style = Style()
    qr_data: bytes = b""
    qr_module: int = 3
    qr_ec: str = "L"


@dataclass(frozen=True)
class ParseResult:
    elements: list
    consumed: int  # bytes fully interpreted; the rest is an incomplete command awaiting more bytes
    state: ParserState


_EC_NAMES = {48: "L", 49: "M", 50: "Q", 51: "H"}
# Commands with fixed lengths (including the introducer) that only change state we do not draw.
_ESC_FIXED = {
    ord("@"): 2,
    ord("2"): 2,
    ord("<"): 2,
    ord("="): 3,
    ord("3"): 3,
    ord("-"): 3,
    ord("G"): 3,
    ord("M"): 3,
    ord("R"): 3,
    ord("t"): 3,
    ord("{"): 3,
    ord("V"): 3,
    ord(" "): 3,
    ord("U"): 3,
    ord("c"): 4,
    ord("$"): 4,
    ord("\\"): 4,
    ord("p"): 5,
    ord("E"): 3,
    ord("!"): 3,
    ord("a"): 3,
    ord("d"): 3,
    ord("J"): 3,
    ord("e"): 3,
    ord("K"): 3,
    ord("L"): 2,
    ord("S"): 2,
    ord("T"): 3,
    ord("i"): 2,
    ord("m"): 2,
    ord("r"): 3,
}
_FS_FIXED = {
    ord("&"): 2,
    ord("."): 2,
    ord("!"): 3,
    ord("C"): 3,
    ord("-"): 3,
    ord("W"): 3,
    ord("S"): 4,
    ord("p"): 4,
}
_GS_FIXED = {
    ord("!"): 3,
    ord("B"): 3,
    ord("H"): 3,
    ord("f"): 3,
    ord("h"): 3,
    ord("w"): 3,
    ord("a"): 3,
    ord("r"): 3,
    ord("I"): 3,
    ord("b"): 3,
    ord("L"): 4,
    ord("W"): 4,
    ord("P"): 4,
    ord("$"): 4,
    ord("\\"): 4,
    ord("/"): 3,
    ord(":"): 2,
    ord("^"): 5,
    ord("T"): 3,
    ord("g"): 4,
    ord("z"): 4,
}


def parse_escpos(data: bytes, state: ParserState | None = None, final: bool = True) -> ParseResult:
    """Interpret ESC/POS bytes into printable elements. Never raises; unknown bytes are skipped.

    With final=False an incomplete command (or a text run) at the end is left unconsumed so a
    streaming caller can retry once more bytes have arrived; with final=True it is dropped.
    """
    st = state or ParserState()
    style = st.style
    out: list = []
    n = len(data)
    i = 0
    text_start = -1

    def flush_text(end: int) -> None:
        nonlocal text_start
        if text_start >= 0 and end > text_start:
            raw = data[text_start:end]
            txt = raw.decode("gb18030" if style.chinese else "cp437", errors="replace")
            out.append(Text(txt, style))
        text_start = -1

    while i < n:
        b = data[i]
        if b >= 0x20 and b != 0x7F:
            if text_start < 0:
                text_start = i
            i += 1
            continue
        # A text run ends at any control byte (GBK trail bytes are never below 0x40).
        flush_text(i)
        need = 1  # bytes this command takes; > n - i means incomplete
        if b == 0x0A:
            out.append(LineFeed(style))
        elif b == 0x09:
            out.append(Text("    ", style))
        elif b in (ESC, FS, GS, DLE):
            need = _command_length(data, i)
            if need is None:  # incomplete
                if final:
                    i = n
                    break
                return ParseResult(out, i, replace(st, style=style))
            style, st = _apply(data, i, need, style, st, out)
        i += need
    if text_start >= 0:
        if not final:
            end = text_start
            return ParseResult(out, end, replace(st, style=style))
        flush_text(n)
    return ParseResult(out, n, replace(st, style=style))


def _u16(data: bytes, i: int) -> int:
    return data[i] | (data[i + 1] << 8)


def _command_length(data: bytes, i: int) -> int | None:
    """Length of the command starting at data[i] (an introducer), or None if not all here yet."""
    avail = len(data) - i
    if avail < 2:
        return None
    b, c = data[i], data[i + 1]
    if b == DLE:
        if c in (0x04, 0x05):  # DLE EOT n, DLE ENQ n
            return 3 if avail >= 3 else None
        if c == 0x14:  # DLE DC4 fn m t
            return 5 if avail >= 5 else None
        return 1  # a stray DLE: skip just it
    if b == ESC:
        if c == ord("*"):  # ESC * m nL nH data
            if avail < 5:
                return None
            cols = _u16(data, i + 3)
            length = 5 + cols * (3 if data[i + 2] in (32, 33) else 1)
        else:
            length = _ESC_FIXED.get(c, 2)
    elif b == FS:
        length = _FS_FIXED.get(c, 2)
    else:  # GS
        if c == ord("(") or c == ord("8"):  # GS ( X pL pH ...  /  GS 8 L p1..p4 ...
            if c == ord("8"):
                if avail < 7:
                    return None
                p = data[i + 3] | data[i + 4] << 8 | data[i + 5] << 16 | data[i + 6] << 24
                length = 7 + p
            else:
                if avail < 5:
                    return None
                length = 5 + _u16(data, i + 3)
        elif c == ord("v"):  # GS v 0 m xL xH yL yH data
            if avail < 8:
                return None
            length = 8 + _u16(data, i + 4) * _u16(data, i + 6)
        elif c == ord("V"):  # GS V m [n]
            if avail < 3:
                return None
            length = 4 if data[i + 2] in (65, 66, 97, 98, 103, 104) else 3
        elif c == ord("k"):  # barcode: GS k m d1..dk NUL  or  GS k m n d1..dn
            if avail < 3:
                return None
            m = data[i + 2]
            if m <= 6:
                end = data.find(b"\x00", i + 3)
                if end < 0:
                    return None
                length = end + 1 - i
            else:
                if avail < 4:
                    return None
                length = 4 + data[i + 3]
        elif c == ord("*"):  # GS * x y data (x*y*8)
            if avail < 4:
                return None
            length = 4 + data[i + 2] * data[i + 3] * 8
        else:
            length = _GS_FIXED.get(c, 2)
    return length if avail >= length else None


def _apply(data: bytes, i: int, length: int, style: Style, st: ParserState, out: list):
    b, c = data[i], data[i + 1]
    arg = data[i + 2] if length >= 3 else 0
    if b == DLE and c == 0x04:
        out.append(StatusQuery(arg))
    elif b == ESC:
        if c == ord("@"):
            style = Style()
            st = ParserState()
            out.append(Init())
        elif c == ord("E"):
            style = replace(style, bold=bool(arg & 1))
        elif c == ord("!"):  # print mode: bit 3 bold, bit 4 double height, bit 5 double width
            style = replace(
                style, bold=bool(arg & 8), height=2 if arg & 16 else 1, width=2 if arg & 32 else 1
            )
        elif c == ord("a"):
            style = replace(style, align={0: 0, 1: 1, 2: 2, 48: 0, 49: 1, 50: 2}.get(arg, style.align))
        elif c == ord("d"):
            out.append(Feed(arg * 30))
        elif c == ord("J"):
            out.append(Feed(arg))
    elif b == FS:
        if c == ord("&"):
            style = replace(style, chinese=True)
        elif c == ord("."):
            style = replace(style, chinese=False)
    elif b == GS:
        if c == ord("!"):
            style = replace(style, width=((arg >> 4) & 7) + 1, height=(arg & 7) + 1)
        elif c == ord("V"):
            out.append(Cut(partial=arg in (1, 49, 66, 98, 104)))
        elif c == ord("v") and data[i + 2] == 0x30:
            m = data[i + 3]
            wb, h = _u16(data, i + 4), _u16(data, i + 6)
            if 0 < wb * 8 <= MAX_RASTER_DOTS and 0 < h <= MAX_RASTER_ROWS:
                out.append(
                    Raster(
                        wb,
                        h,
                        bytes(data[i + 8 : i + length]),
                        2 if m in (1, 3, 49, 51) else 1,
                        2 if m in (2, 3, 50, 51) else 1,
                        style,
                    )
                )
        elif c == ord("(") and data[i + 2] == ord("k") and length >= 7 and data[i + 5] == 49:
            fn = data[i + 6]
            params = data[i + 7 : i + length]
            if fn == 67 and params:
                st = replace(st, qr_module=max(1, min(16, params[0])))
            elif fn == 69 and params:
                st = replace(st, qr_ec=_EC_NAMES.get(params[0], st.qr_ec))
            elif fn == 80 and params:
                st = replace(st, qr_data=bytes(params[1:]))
            elif fn == 81 and st.qr_data:
                out.append(QRPrint(st.qr_data, st.qr_module, st.qr_ec, style))
    return style, st


# ---------------------------------------------------------------- rendering to PNG


@functools.lru_cache(maxsize=1)
def cjk_font_file() -> tuple[str, int] | None:
    """(file, face index) of a Simplified-Chinese sans font, as fontconfig chooses it."""
    try:
        res = subprocess.run(
            ["fc-match", "-f", "%{file}|%{index}", "sans:lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        path, _, idx = res.stdout.strip().partition("|")
        if path and os.path.exists(path):
            return path, int(idx or 0)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return None


@functools.lru_cache(maxsize=16)
def _font(px: int):
    from PIL import ImageFont

    found = cjk_font_file()
    if found:
        return ImageFont.truetype(found[0], px, index=found[1])
    return ImageFont.load_default()


CHAR_DOTS = 24  # font A: 12×24 half-width, 24×24 hanzi
LINE_DOTS = 30  # default line spacing (ESC 2)


@functools.lru_cache(maxsize=4096)
def _glyph(ch: str, cell_w: int, bold: bool):
    from PIL import Image, ImageDraw

    glyph = Image.new("L", (cell_w, CHAR_DOTS), 255)
    d = ImageDraw.Draw(glyph)
    for dx in (0, 1) if bold else (0,):  # emphasised: struck twice, one dot apart, as printers do
        d.text((cell_w / 2 + dx, CHAR_DOTS / 2), ch, font=_font(CHAR_DOTS - 2), fill=0, anchor="mm")
    return glyph


def render_png(elements: list, width_dots: int = 576):
    """Draw one receipt (elements up to a cut) as a PIL image, width_dots wide, black on white."""
    from PIL import Image

    rows: list = []  # (image, align)
    line: list = []  # (text, style) runs of the current line
    line_w = 0

    def char_w(ch: str, s: Style) -> int:
        import unicodedata

        return (24 if unicodedata.east_asian_width(ch) in "WF" else 12) * s.width

    def end_line(align: int) -> None:
        nonlocal line, line_w
        h = max([CHAR_DOTS * s.height for _, s in line] or [CHAR_DOTS]) + (LINE_DOTS - CHAR_DOTS)
        img = Image.new("L", (max(line_w, 1), h), 255)
        x = 0
        for txt, s in line:
            for ch in txt:
                w = char_w(ch, s)
                glyph = _glyph(ch, w // s.width, s.bold)
                if s.width != 1 or s.height != 1:
                    glyph = glyph.resize((w, CHAR_DOTS * s.height))
                img.paste(glyph, (x, h - glyph.height - (LINE_DOTS - CHAR_DOTS)))
                x += w
        rows.append((img, align))
        line, line_w = [], 0

    def add_text(txt: str, s: Style) -> None:
        nonlocal line_w
        for ch in txt:
            w = char_w(ch, s)
            if line_w + w > width_dots:  # the printer wraps at the paper's edge
                end_line(s.align)
            if line and line[-1][1] == s:
                line[-1] = (line[-1][0] + ch, s)
            else:
                line.append((ch, s))
            line_w += w

    for el in elements:
        if isinstance(el, Text):
            add_text(el.text, el.style)
        elif isinstance(el, LineFeed):
            end_line(el.style.align)
        elif isinstance(el, Feed):
            if line:
                end_line(line[-1][1].align)
            rows.append((Image.new("L", (1, max(el.dots, 1)), 255), 0))
        elif isinstance(el, QRPrint):
            rows.append((_qr_image(el), el.style.align))
        elif isinstance(el, Raster):
            rows.append((_raster_image(el), el.style.align))
        elif isinstance(el, Init):
            line, line_w = [], 0
    if line:
        end_line(line[-1][1].align)

    margin = 16
    page = Image.new("L", (width_dots + 2 * margin, sum(r.height for r, _ in rows) + 2 * margin), 255)
    y = margin
    for img, align in rows:
        img = img.crop((0, 0, min(img.width, width_dots), img.height))
        x = {0: 0, 1: (width_dots - img.width) // 2, 2: width_dots - img.width}.get(align, 0)
        page.paste(img, (margin + x, y))
        y += img.height
    return page


def _qr_image(el: QRPrint):
    import qrcode
    import qrcode.constants

    ec = {
        "L": qrcode.constants.ERROR_CORRECT_L,
        "M": qrcode.constants.ERROR_CORRECT_M,
        "Q": qrcode.constants.ERROR_CORRECT_Q,
        "H": qrcode.constants.ERROR_CORRECT_H,
    }[el.ec]
    try:
        qr = qrcode.QRCode(version=None, box_size=el.module, border=0, error_correction=ec)
        qr.add_data(el.data)
        qr.make(fit=True)
        return qr.make_image().get_image().convert("L")
    except Exception:  # data too long for any QR version: a real printer prints nothing
        from PIL import Image

        return Image.new("L", (1, 1), 255)


def _raster_image(el: Raster):
    from PIL import Image, ImageOps

    need = el.width_bytes * el.height
    raw = el.data[:need].ljust(need, b"\x00")
    # PIL's mode "1" reads a set bit as white; ESC/POS sets a bit to print a black dot.
    img = ImageOps.invert(Image.frombytes("1", (el.width_bytes * 8, el.height), raw).convert("L"))
    if el.scale_x != 1 or el.scale_y != 1:
        img = img.resize((img.width * el.scale_x, img.height * el.scale_y), Image.Resampling.NEAREST)
    return img


# ---------------------------------------------------------------- the twin on a pty


class PrinterTwin:
    """An ESC/POS printer behind a pseudo-terminal; `port` is the path the driver opens."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        baudrate: int = 115200,
        paper: str = "full",
        width_dots: int = 576,
        pace: bool = False,
        on_receipt: Callable[[Path], None] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.baudrate = baudrate
        self.width_dots = width_dots
        self.pace = pace
        self.on_receipt = on_receipt
        self.receipts: list[Path] = []
        self.lost_receipts = 0  # cut while paper was out: nothing came out of the printer
        self._received = bytearray()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._paper = "full"
        self._out_after: int | None = None
        self._paper_ran_out = False
        self._online = True
        self.set_paper(paper)
        self._buf = bytearray()
        self._state = ParserState()
        self._page: list = []
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF mangling; we keep the slave open so reads never EIO
        self._port = os.ttyname(self._slave)
        self._stop = threading.Event()
        # Rendering runs on its own thread: a printer answers DLE EOT in real time, even while printing.
        self._pages: queue.Queue = queue.Queue()
        self._page_count = 0
        self._renderer = threading.Thread(target=self._render_loop, name="printer-twin-render", daemon=True)
        self._renderer.start()
        self._thread = threading.Thread(target=self._run, name="printer-twin", daemon=True)
        self._thread.start()

    @property
    def port(self) -> str:
        return self._port

    @property
    def received(self) -> bytes:
        """Every byte the driver sent, for tests."""
        with self._lock:
            return bytes(self._received)

    def clear_received(self) -> None:
        with self._lock:
            self._received.clear()

    def set_paper(self, paper: str, after_elements: int | None = None) -> None:
        """ "full" | "low" | "out". set_paper("out", after_elements=n): the roll ends mid-receipt, after
        n more printed elements (text runs, line feeds, QR codes…); that receipt is lost."""
        if paper not in PAPER_BYTES:
            raise ValueError(paper)
        with self._lock:
            if after_elements is None or paper != "out":
                self._paper, self._out_after = paper, None
                self._paper_ran_out = paper == "out"
            else:
                self._out_after = after_elements

    @property
    def paper(self) -> str:
        with self._lock:
            return self._paper

    def offline(self) -> None:
        """Powered off: bytes on the wire are lost, nothing answers."""
        with self._lock:
            self._online = False

    def online(self) -> None:
        with self._lock:
            self._online = True
            self._buf.clear()
            self._page = []
            self._state = ParserState()

    def wait_receipts(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.receipts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._pages.put(None)
        self._renderer.join(timeout=10)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PrinterTwin:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reader thread

    def _run(self) -> None:
        chunk = 64 if self.pace else 4096
        wire_free = time.monotonic()  # when the bytes read so far would have finished arriving
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, chunk)
            except OSError:
                return
            if not data:
                continue
            if self.pace:
                wire_free = max(wire_free, time.monotonic()) + len(data) * 10 / self.baudrate
                time.sleep(max(0.0, wire_free - time.monotonic()))
            try:
                self._feed(data)
            except Exception:  # the twin must keep answering whatever it is sent
                log.exception("printer twin: failed to handle %d bytes", len(data))

    def _feed(self, data: bytes) -> None:
        answers = bytearray()
        with self._lock:
            self._received += data
            if not self._online:
                return
            self._buf += data
            res = parse_escpos(bytes(self._buf), self._state, final=False)
            del self._buf[: res.consumed]
            self._state = res.state
            for el in res.elements:
                if isinstance(el, StatusQuery):
                    answers.append(PAPER_BYTES[self._paper] if el.n == 4 else STATUS_OK)
                    continue
                if self._out_after is not None:
                    self._out_after -= 1
                    if self._out_after <= 0:
                        self._paper, self._out_after = "out", None
                        self._paper_ran_out = True
                if isinstance(el, Cut):
                    if self._paper_ran_out:
                        self.lost_receipts += 1
                    else:
                        self._page_count += 1
                        self._pages.put((self._page_count, self._page))
                    self._page = []
                    self._paper_ran_out = self._paper == "out"
                else:
                    self._page.append(el)
        if answers:
            os.write(self._master, bytes(answers))

    def _render_loop(self) -> None:
        while (item := self._pages.get()) is not None:
            number, page = item
            path = self.out_dir / f"receipt-{number:04d}.png"
            try:
                render_png(page, self.width_dots).save(path)
            except Exception:
                log.exception("printer twin: could not render receipt %d", number)
                continue
            log.info("printer twin: receipt → %s", path)
            with self._cond:
                self.receipts.append(path)
                self._cond.notify_all()
            if self.on_receipt:
                self.on_receipt(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ESC/POS receipt-printer twin on a pseudo-terminal")
    ap.add_argument("--out", required=True, help="directory for receipt PNGs")
    ap.add_argument("--paper", choices=sorted(PAPER_BYTES), default="full")
    ap.add_argument("--width", type=int, default=576, help="paper width in dots (576 = 80 mm, 384 = 58 mm)")
    ap.add_argument("--baudrate", type=int, default=115200)
    ap.add_argument("--pace", action="store_true", help="read no faster than the baud rate")
    args = ap.parse_args(argv)
    twin = PrinterTwin(
        args.out,
        baudrate=args.baudrate,
        paper=args.paper,
        width_dots=args.width,
        pace=args.pace,
        on_receipt=lambda p: print(f"receipt: {p}", flush=True),
    )
    print(twin.port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        twin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
