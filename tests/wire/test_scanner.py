"""SerialScanner over real pseudo-terminals (ScannerTwin), its line splitter, and the `scan` CLI."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.base import DeviceStatus, ReaderStatusChanged
from devices.scanner import CodeScanned, LineSplitter, ScanRejected, SerialScanner, decode_code, line_event
from sim.scanner_twin import ScannerTwin

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "https://si.example.cn/essc?t=A1B2C3D4E5F6"


def collect(q: queue.Queue, n: int, timeout: float = 3.0, kinds=(CodeScanned, ScanRejected)) -> list:
    out, end = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        try:
            ev = q.get(timeout=0.05)
        except queue.Empty:
            continue
        if isinstance(ev, kinds):
            out.append(ev)
    return out


@pytest.fixture
def scanner_on():
    made = []

    def make(twin: ScannerTwin, **kw):
        q: queue.Queue = queue.Queue()
        s = SerialScanner(twin.port, twin.baudrate, twin.terminator, **kw)
        s.start(q.put)
        made.append(s)
        ev = q.get(timeout=3)
        assert isinstance(ev, ReaderStatusChanged) and ev.status is DeviceStatus.ONLINE
        return s, q

    yield make
    for s in made:
        s.stop()


@pytest.mark.wire
@pytest.mark.timeout(30)
@pytest.mark.parametrize("baud, term", [(9600, b"\r"), (115200, b"\n"), (9600, b"\r\n")])
def test_codes_arrive_in_order(scanner_on, baud, term):
    with ScannerTwin(baud, term) as twin:
        _, q = scanner_on(twin)
        twin.scan(TOKEN)
        twin.scan("医保码123")
        twin.write_raw("张三".encode("gb18030") + term)  # a GBK scanner
        got = collect(q, 3)
        assert [(e.text, e.source) for e in got] == [(TOKEN, "scanner"), ("医保码123", "scanner"),
                                                    ("张三", "scanner")]


@pytest.mark.wire
@pytest.mark.timeout(30)
def test_crlf_from_a_cr_configured_scanner_and_blank_lines(scanner_on):
    with ScannerTwin(115200, b"\r") as twin:
        _, q = scanner_on(twin)
        twin.write_raw(b"ABC\r\n\r\r\nDEF\r")
        assert [e.text for e in collect(q, 2)] == ["ABC", "DEF"]
        assert collect(q, 1, timeout=0.3) == []


@pytest.mark.wire
@pytest.mark.timeout(30)
def test_overlong_and_undecodable_lines_are_dropped_then_reading_goes_on(scanner_on):
    with ScannerTwin(115200, b"\r", pace=False) as twin:
        _, q = scanner_on(twin, max_len=256)
        twin.write_raw(b"X" * 5000 + b"\r")
        twin.write_raw(b"\xff\xfe\x80\x81\r")
        twin.write_raw(b"AB\x00\x07CD\r")
        twin.scan("OK-1")
        got = collect(q, 4)
        assert [type(e).__name__ for e in got] == ["ScanRejected", "ScanRejected", "ScanRejected", "CodeScanned"]
        assert [e.reason for e in got[:3]] == ["too_long", "undecodable", "not_printable"]
        assert got[3].text == "OK-1"


NOT_PRINTABLE = {
    "nul": "AB\x00CD",
    "bell": "AB\x07CD",
    "tab": "A\tB",
    "escape_sequence": "\x1b[2J\x1b[31mPAID",
    "del": "AB\x7f",
    "c1_control": "AB\x85CD",
    "zero_width_space": "https://si.example.cn/essc?t=A1\u200bB2",
    "zero_width_joiner": "A\u200dB",
    "bom": "\ufeffESSC",
    "bidi_override": "receipt \u202egnp.exe",
    "bidi_isolate": "A\u2066B\u2069",
    "private_use": "A\ue000B",
    "private_use_plane_15": "A\U000f0000",
    "unassigned": "A\u0378B",
    "noncharacter": "A\ufffeB",
    "line_separator": "A\u2028B",
    "no_break_space": "A\u00a0B",
}


@pytest.mark.wire
@pytest.mark.timeout(30)
def test_text_that_is_not_printable_is_rejected_never_scanned(scanner_on):
    with ScannerTwin(115200, b"\r", pace=False) as twin:
        _, q = scanner_on(twin)
        for text in NOT_PRINTABLE.values():
            twin.scan(text)
        twin.scan("张\x1b三", encoding="gb18030")  # not UTF-8: the GBK fallback is checked the same way
        twin.scan("医保码-OK")
        got = collect(q, len(NOT_PRINTABLE) + 2)
        assert [(type(e).__name__, getattr(e, "reason", None)) for e in got] == (
            [("ScanRejected", "not_printable")] * (len(NOT_PRINTABLE) + 1) + [("CodeScanned", None)]
        )
        assert all(e.source == "scanner" for e in got)
        assert got[-1].text == "医保码-OK"


@pytest.mark.wire
@pytest.mark.timeout(30)
def test_missing_port_is_no_device():
    q: queue.Queue = queue.Queue()
    s = SerialScanner("/dev/does-not-exist-scanner", reopen_interval=0.1)
    s.start(q.put)
    try:
        ev = q.get(timeout=3)
        assert isinstance(ev, ReaderStatusChanged) and ev.status is DeviceStatus.NO_DEVICE
        assert s.status() is DeviceStatus.NO_DEVICE
    finally:
        s.stop()


@pytest.mark.wire
@pytest.mark.timeout(30)
def test_scan_cli_prints_codes_and_stops_by_count():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with ScannerTwin(9600, b"\r") as twin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk.cli.scan", "--port", twin.port, "--count", "2", "--json",
             "--seconds", "15"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )
        try:
            time.sleep(1.0)  # let it open the port
            twin.scan(TOKEN)
            twin.scan("第二个码")
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert [json.loads(line) for line in out.splitlines()] == [
            {"text": TOKEN, "source": "scanner"}, {"text": "第二个码", "source": "scanner"}
        ]


@pytest.mark.wire
@pytest.mark.timeout(30)
def test_scan_cli_seconds_bound_and_missing_port():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with ScannerTwin() as twin:
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "kiosk.cli.scan", "--port", twin.port, "--seconds", "0.5"],
                           capture_output=True, text=True, timeout=15, env=env, cwd=ROOT)
        assert p.returncode == 0 and p.stdout == "" and time.monotonic() - t0 < 10
    p = subprocess.run([sys.executable, "-m", "kiosk.cli.scan", "--port", "/dev/does-not-exist-scanner"],
                       capture_output=True, text=True, timeout=15, env=env, cwd=ROOT)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ splitter properties


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30), st.sampled_from([b"\r", b"\n", b"\r\n"]))
def test_splitter_never_raises_and_stays_bounded(chunks, term):
    sp = LineSplitter(term, max_len=64)
    for c in chunks:
        for line in sp.feed(c):
            assert line is None or (0 < len(line) <= 64 and term not in line)
            if line is not None:
                decode_code(line)  # never raises
        assert len(sp._buf) <= 64 + len(c) + len(term)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x9FFF,
                                                blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40),
                max_size=10), st.integers(1, 50))
def test_splitter_recovers_every_line_at_any_chunking(texts, step):
    stream = b"".join(t.encode() + b"\r\n" for t in texts)
    sp = LineSplitter(b"\r", max_len=1024)
    lines = []
    for i in range(0, len(stream), step):
        lines += sp.feed(stream[i : i + step])
    assert [decode_code(b) for b in lines] == texts


# ------------------------------------------------------------------------------ the printable gate


@pytest.mark.parametrize("name", list(NOT_PRINTABLE))
def test_line_event_rejects_each_kind_of_unprintable_text(name):
    assert line_event(NOT_PRINTABLE[name].encode()) == ScanRejected("not_printable", "scanner")


def test_line_event_passes_codes_with_spaces_and_chinese():
    for text in (TOKEN, "医保码 123", "A B", "（全角）", "Ä-é-ß"):
        assert line_event(text.encode()) == CodeScanned(text, "scanner")
    assert line_event("张三".encode("gb18030")) == CodeScanned("张三", "scanner")
    assert line_event(None) == ScanRejected("too_long", "scanner")
    assert line_event(b"\xff\xfe\x80\x81") == ScanRejected("undecodable", "scanner")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_any_line_becomes_printable_code_or_rejection(raw):
    ev = line_event(raw)
    if isinstance(ev, CodeScanned):
        assert ev.text and ev.text.isprintable() and ev.text == decode_code(raw)
    else:
        assert isinstance(ev, ScanRejected) and ev.reason in ("undecodable", "not_printable")
