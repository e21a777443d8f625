"""SerialPrinter against the printer twin over a real pseudo-terminal; the `printer test` CLI too."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from datetime import datetime
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from devices.base import DeviceStatus, PaperStatus, PrintOutcome
from devices.printer import SerialPrinter
from kiosk.receipts import PROFILES, Receipt, render_escpos
from sim.printer_twin import PrinterTwin

pytestmark = [pytest.mark.wire, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
QUERY = b"\x10\x04\x04"
URL = "https://si.example.cn/r/7Q2K9XW4TB"
RECEIPT = Receipt(
    site_name="示范镇人社服务站",
    terminal_id="T-370102-0001",
    printed_at=datetime(2024, 5, 6, 9, 30),
    service="养老金查询",
    holder_name_masked="王*兰",
    holder_id_masked="3701**********0527",
    lines=[("参保险种", "城乡居民基本养老保险"), ("待遇状态", "领取中"), ("月领取金额", "238.50元")],
    qr_url=URL,
)


@pytest.fixture
def twin(tmp_path):
    t = PrinterTwin(tmp_path / "receipts")
    yield t
    t.close()


@pytest.fixture
def printer(twin):
    p = SerialPrinter(twin.port, timeout=1.0, settle=0.1)
    yield p
    p.close()


@pytest.mark.parametrize("profile", ["native-qr", "raster-qr"])
def test_prints_a_receipt_whose_png_qr_decodes_to_the_url(twin, printer, profile):
    data = render_escpos(RECEIPT, profile)
    res = printer.print_receipt(data)
    assert (res.outcome, res.paper) == (PrintOutcome.PRINTED, PaperStatus.FULL)
    assert twin.wait_receipts(1, timeout=10)
    assert twin.received == QUERY + data + QUERY  # status, receipt, status: nothing else
    png = twin.receipts[0]
    assert png.exists() and png.suffix == ".png"
    with Image.open(png) as img:
        assert img.width == PROFILES[profile].width_dots + 32
        assert [r.text for r in zxingcpp.read_barcodes(img)] == [URL]


def test_status_reports_paper_states(twin, printer):
    assert printer.status().paper is PaperStatus.FULL
    twin.set_paper("low")
    st = printer.status()
    assert (st.device, st.paper, st.can_print) == (DeviceStatus.ONLINE, PaperStatus.LOW, True)
    twin.set_paper("out")
    st = printer.status()
    assert (st.device, st.paper, st.can_print) == (DeviceStatus.ONLINE, PaperStatus.OUT, False)
    assert twin.received == QUERY * 3


def test_low_paper_still_prints_and_says_so(twin, printer):
    twin.set_paper("low")
    res = printer.print_receipt(render_escpos(RECEIPT))
    assert (res.outcome, res.paper) == (PrintOutcome.PRINTED, PaperStatus.LOW)
    assert twin.wait_receipts(1, timeout=10)


def test_paper_out_before_sends_nothing_but_the_status_query(twin, printer):
    twin.set_paper("out")
    res = printer.print_receipt(render_escpos(RECEIPT))
    assert (res.outcome, res.paper) == (PrintOutcome.PAPER_OUT, PaperStatus.OUT)
    time.sleep(0.2)
    assert twin.received == QUERY
    assert twin.receipts == []


def test_paper_runs_out_mid_receipt(twin, printer):
    twin.set_paper("out", after_elements=10)
    res = printer.print_receipt(render_escpos(RECEIPT))
    assert (res.outcome, res.paper) == (PrintOutcome.PAPER_OUT, PaperStatus.OUT)
    assert twin.receipts == [] and twin.lost_receipts == 1
    # a new roll: the next receipt prints
    twin.set_paper("full")
    assert printer.print_receipt(render_escpos(RECEIPT)).outcome is PrintOutcome.PRINTED
    assert twin.wait_receipts(1, timeout=10)


def test_powered_off_printer_is_offline_within_the_timeout(twin, printer):
    assert printer.status().device is DeviceStatus.ONLINE
    twin.offline()
    twin.clear_received()
    t0 = time.monotonic()
    st = printer.status()
    elapsed = time.monotonic() - t0
    assert st.device is DeviceStatus.OFFLINE and not st.can_print
    assert elapsed < printer.timeout + 0.5
    res = printer.print_receipt(render_escpos(RECEIPT))
    assert res.outcome is PrintOutcome.OFFLINE
    assert twin.received == QUERY * 2  # the receipt was not sent to a silent printer
    twin.online()
    assert printer.status().device is DeviceStatus.ONLINE  # same driver recovers


def test_missing_port_is_a_value_not_an_exception(tmp_path):
    p = SerialPrinter(str(tmp_path / "no-such-tty"), timeout=0.5)
    st = p.status()
    assert (st.device, st.paper) == (DeviceStatus.NO_DEVICE, PaperStatus.UNKNOWN)
    assert p.print_receipt(b"\x1b@").outcome is PrintOutcome.OFFLINE


def test_port_held_by_another_program_is_busy(twin, printer):
    assert printer.status().device is DeviceStatus.ONLINE  # holds the port open, locked
    other = SerialPrinter(twin.port, timeout=0.5)
    try:
        assert other.status().device is DeviceStatus.BUSY
        assert other.print_receipt(b"\x1b@").outcome is PrintOutcome.OFFLINE
    finally:
        other.close()
    printer.close()
    assert twin.received == QUERY


@pytest.fixture
def raw_pty():
    """A bare pty whose far end answers every status query with a chosen byte."""
    master, slave = os.openpty()
    tty.setraw(slave)
    answer = bytearray(b"\x1a")
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                if QUERY in os.read(master, 64):
                    os.write(master, bytes(answer))

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    yield os.ttyname(slave), answer
    stop.set()
    th.join(2)
    os.close(master)
    os.close(slave)


def test_bit3_only_answer_is_read_as_near_end_and_garbage_as_error(raw_pty):
    port, answer = raw_pty
    p = SerialPrinter(port, timeout=1.0, settle=0)
    try:
        assert p.status().paper is PaperStatus.LOW  # 0x1A: majority reading (see devices/printer.py)
        answer[0] = 0xFF
        assert p.status().device is DeviceStatus.HARDWARE_ERROR
        assert p.print_receipt(b"\x1b@").outcome is PrintOutcome.ERROR
    finally:
        p.close()


# -------------------------------------------------- CLI


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli.printer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_cli_prints_and_exits_0(twin):
    r = _cli("printer", "test", "--port", twin.port, "--json")
    assert r.returncode == 0, r.stderr
    assert '"outcome": "printed"' in r.stdout
    assert twin.wait_receipts(1, timeout=10)
    with Image.open(twin.receipts[0]) as img:
        assert len(zxingcpp.read_barcodes(img)) == 1


def test_cli_raster_profile_in_chinese(twin):
    r = _cli("test", "--port", twin.port, "--profile", "raster-qr")
    assert r.returncode == 0, r.stderr
    assert "已打印测试回执" in r.stdout
    assert b"\x1dv0" in twin.received


def test_cli_out_of_paper_exits_5_and_sends_only_the_query(twin):
    twin.set_paper("out")
    r = _cli("test", "--port", twin.port)
    assert r.returncode == 5, r.stderr
    assert "缺纸" in r.stdout
    assert twin.received == QUERY


def test_cli_no_printer_answering_exits_2(twin, tmp_path):
    twin.offline()
    r = _cli("test", "--port", twin.port, "--timeout", "0.5")
    assert r.returncode == 2, r.stderr
    r = _cli("test", "--port", str(tmp_path / "missing"))
    assert r.returncode == 2, r.stderr


def test_twin_runs_as_a_process_until_ctrl_c(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.printer_twin", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        r = _cli("test", "--port", port)
        assert r.returncode == 0, r.stderr
        assert proc.stdout.readline().startswith("receipt: ")
        assert len(list(tmp_path.glob("receipt-*.png"))) == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
