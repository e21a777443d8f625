"""SerialIdCardReader against IdCardTwin over real pseudo-terminals, and the `idcard read` CLI."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from devices import sam_frames as sf
from devices.base import DeviceStatus, MediaStatus
from devices.idcard import (
    IdCardData,
    IdCardFailed,
    IdCardFault,
    IdCardPlaced,
    IdCardRemoved,
    ReaderStatusChanged,
    SerialIdCardReader,
)
from sim.idcard_twin import IdCardTwin, card_from_persona, load_personas

pytestmark = [pytest.mark.wire, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
PERSONAS = load_personas()
TODAY = date(2026, 11, 23)


class Events:
    def __init__(self):
        self.q: queue.Queue = queue.Queue()

    def __call__(self, ev):
        self.q.put(ev)

    def next(self, kind, timeout=3.0):
        """The next event of `kind` (others are skipped), or fail after `timeout`."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {kind.__name__} within {timeout}s")
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(ev, kind):
                return ev

    def drain(self, wait=0.0):
        time.sleep(wait)
        out = []
        while not self.q.empty():
            out.append(self.q.get())
        return out


@pytest.fixture
def twin():
    t = IdCardTwin(pace=False, seed=7).start()
    yield t
    t.stop()


@pytest.fixture
def reader_for():
    made = []

    def make(port, **kw):
        kw.setdefault("poll_interval", 0.05)
        kw.setdefault("timeout", 0.5)
        kw.setdefault("today", lambda: TODAY)
        kw.setdefault("reopen_interval", 0.2)
        r = SerialIdCardReader(port, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def expected(key) -> IdCardData:
    return card_from_persona(PERSONAS[key])


def same_card(got: IdCardData, key: str) -> None:
    want = expected(key)
    assert got.photo_wlt and len(got.photo_wlt) == 1024
    assert got == type(want)(**{**want.__dict__, "photo_wlt": got.photo_wlt})


@pytest.mark.parametrize("key", ["elder", "x_ending", "shui", "foreign", "hk"])
def test_card_placed_and_removed(twin, reader_for, key):
    ev = Events()
    r = reader_for(twin.port)
    r.start(ev)
    assert ev.next(ReaderStatusChanged).status is DeviceStatus.ONLINE
    assert r.media() is MediaStatus.ABSENT
    twin.place(key)
    placed = ev.next(IdCardPlaced)
    same_card(placed.data, key)
    assert r.media() is MediaStatus.PRESENT
    # lying on the reader: no second read, no removal
    assert not [e for e in ev.drain(0.4) if isinstance(e, IdCardPlaced | IdCardRemoved)]
    assert twin.commands.count(sf.READ_TEXT_PHOTO) == 1
    twin.remove()
    ev.next(IdCardRemoved)
    assert r.media() is MediaStatus.ABSENT


def test_halted_card_stays_present_until_lifted(reader_for):
    with IdCardTwin(pace=False, halt_after_read=True) as t:
        ev = Events()
        r = reader_for(t.port)
        r.start(ev)
        t.place("elder")
        ev.next(IdCardPlaced)
        assert not [e for e in ev.drain(0.5) if isinstance(e, IdCardRemoved)]
        t.remove()
        ev.next(IdCardRemoved)
        t.place("x_ending")  # a new card after the halted one is read again
        same_card(ev.next(IdCardPlaced).data, "x_ending")


def test_expired_card_fails_with_its_data(twin, reader_for):
    ev = Events()
    reader_for(twin.port).start(ev)
    twin.place("expired")
    failed = ev.next(IdCardFailed)
    assert failed.fault is IdCardFault.EXPIRED and "2019-07-01" in failed.detail
    assert failed.data is not None and failed.data.id_number == "110105200306150829"


def test_expiry_uses_the_clock_passed_in(twin, reader_for):
    ev = Events()
    reader_for(twin.port, today=lambda: date(2019, 7, 1)).start(ev)
    twin.place("expired")
    assert ev.next(IdCardPlaced).data.valid_to == date(2019, 7, 1)


def test_2023_foreign_card_is_unreadable(twin, reader_for):
    ev = Events()
    reader_for(twin.port).start(ev)
    twin.place("foreign_2023")
    failed = ev.next(IdCardFailed)
    assert failed.fault is IdCardFault.UNREADABLE and "15-character" in failed.detail
    twin.remove()
    ev.next(IdCardRemoved)  # the failed card still counts as lying there until lifted


def test_bad_check_digit_is_invalid_data(twin, reader_for):
    ev = Events()
    reader_for(twin.port).start(ev)
    twin.place({**PERSONAS["x_ending"], "id_number": "320583197105201041"})
    failed = ev.next(IdCardFailed)
    assert failed.fault is IdCardFault.INVALID_DATA and "GB 11643" in failed.detail
    assert "320583" not in failed.detail


@pytest.mark.parametrize("sw3, fault", [(0x33, IdCardFault.UNREADABLE), (0x41, IdCardFault.UNREADABLE),
                                        (0x21, IdCardFault.UNSUPPORTED)])
def test_read_failure_shows_sw3(twin, reader_for, sw3, fault):
    ev = Events()
    reader_for(twin.port).start(ev)
    twin.set_fault(sf.READ_TEXT_PHOTO, sw3)
    twin.place("elder")
    failed = ev.next(IdCardFailed)
    assert failed.fault is fault and f"sw3=0x{sw3:02X}" in failed.detail


def test_noise_mode_still_reads_every_card(reader_for):
    with IdCardTwin(pace=True, noise=True, seed=1234) as t:
        ev = Events()
        r = reader_for(t.port, timeout=0.5, retries=5)
        r.start(ev)
        assert ev.next(ReaderStatusChanged, timeout=5).status is DeviceStatus.ONLINE
        for key in ["elder", "hk", "foreign", "x_ending", "shui", "elder"]:
            t.place(key)
            same_card(ev.next(IdCardPlaced, timeout=8).data, key)
            t.remove()
            ev.next(IdCardRemoved, timeout=8)
        assert not [e for e in ev.drain() if isinstance(e, IdCardFailed)]
        assert t.bytes_out > 6 * 1295


def test_silent_reader_is_no_device_in_bounded_time(reader_for):
    with IdCardTwin(pace=False) as t:
        t.silent = True
        ev = Events()
        r = reader_for(t.port, timeout=0.5)
        t0 = time.monotonic()
        r.start(ev)
        assert ev.next(ReaderStatusChanged, timeout=5).status is DeviceStatus.NO_DEVICE
        assert time.monotonic() - t0 < 2.5  # two 0.5 s timeouts, not forever
        assert r.status() is DeviceStatus.NO_DEVICE and r.media() is MediaStatus.UNKNOWN
        t.silent = False  # module comes back
        assert ev.next(ReaderStatusChanged, timeout=5).status is DeviceStatus.ONLINE
        r.stop()  # before the twin's pty closes: a poll of a closed pty would log after the test has ended


def test_reader_going_silent_with_card_on_it(twin, reader_for):
    ev = Events()
    r = reader_for(twin.port)
    r.start(ev)
    twin.place("elder")
    ev.next(IdCardPlaced)
    twin.silent = True
    ev.next(IdCardRemoved, timeout=5)
    assert ev.next(ReaderStatusChanged, timeout=5).status is DeviceStatus.NO_DEVICE


def test_missing_port_is_no_device(reader_for):
    ev = Events()
    r = reader_for("/dev/does-not-exist-idcard")
    r.start(ev)
    assert ev.next(ReaderStatusChanged).status is DeviceStatus.NO_DEVICE
    assert r.sam_status() is DeviceStatus.NO_DEVICE
    res = r.read_once(0.2)
    assert isinstance(res, IdCardFailed) and res.fault is IdCardFault.NO_DEVICE


def test_sam_status_error_code_is_hardware_error(twin, reader_for):
    twin.set_fault(sf.SAM_STATUS, 0x60)
    assert reader_for(twin.port).sam_status() is DeviceStatus.HARDWARE_ERROR


def test_port_held_by_another_process_is_busy_not_missing(twin, reader_for):
    import serial

    holder = serial.Serial(twin.port, 115200, exclusive=True)  # the running kiosk holds it
    try:
        assert reader_for(twin.port).sam_status() is DeviceStatus.BUSY
    finally:
        holder.close()
    assert reader_for(twin.port).sam_status() is DeviceStatus.ONLINE


def test_read_once_no_card_and_card(twin, reader_for):
    r = reader_for(twin.port)
    t0 = time.monotonic()
    res = r.read_once(0.5)
    assert isinstance(res, IdCardFailed) and res.fault is IdCardFault.NO_CARD
    assert time.monotonic() - t0 < 1.5
    twin.place("hk")
    same_card(r.read_once(1.0), "hk")


def test_checksum_errors_are_retried(reader_for):
    # Noise with a fixed seed corrupts some checksums: the one-shot read must still succeed each time.
    with IdCardTwin("elder", pace=False, noise=True, seed=99) as t:
        r = reader_for(t.port, retries=6)
        for _ in range(5):
            same_card(r.read_once(3.0), "elder")


# ------------------------------------------------------------------------------------ CLI


def run_cli(*args, timeout=20):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli.idcard", "read", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )


@pytest.mark.parametrize(
    "key, card_type, valid_to",
    [("elder", "resident", "long-term"), ("foreign", "foreign_permanent", "2028-05-10"),
     ("hk", "hk_mo_tw", "2028-10-01")],
)
def test_cli_reads_each_card_type_masked(twin, key, card_type, valid_to):
    twin.place(key)
    p = run_cli("--port", twin.port, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    persona = PERSONAS[key]
    assert out["card_type"] == card_type and out["valid_to"] == valid_to
    assert out["id_number"] != persona["id_number"] and out["id_number"][-4:] == persona["id_number"][-4:]
    assert persona["name"] not in p.stdout and persona["id_number"] not in p.stdout
    for k in ("name", "gender", "nation", "birth_date", "address", "issuer", "valid_from"):
        assert k in out


def test_cli_reveal(twin):
    twin.place("x_ending")
    out = json.loads(run_cli("--port", twin.port, "--json", "--reveal").stdout)
    assert out == {
        "card_type": "resident", "name": "陈淑珍", "gender": "2", "gender_name": "女", "nation": "汉",
        "nation_code": "01", "birth_date": "1971-05-20", "address": "江苏省张家港市杨舍镇人民中路88号",
        "id_number": "32058319710520104X", "issuer": "张家港市公安局", "valid_from": "2016-08-08",
        "valid_to": "2036-08-08", "expired": False,
    }


def test_cli_exit_codes(twin):
    p = run_cli("--port", twin.port, "--json", "--timeout", "0.5")
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1
    assert "no_card" in p.stderr
    p = run_cli("--port", "/dev/does-not-exist-idcard", "--json")
    assert p.returncode == 2 and "no_device" in p.stderr
    twin.place("foreign_2023")
    p = run_cli("--port", twin.port, "--json")
    assert p.returncode == 4 and "unreadable" in p.stderr
    twin.place("expired")
    p = run_cli("--port", twin.port, "--json")
    assert p.returncode == 4 and "expired" in p.stderr and json.loads(p.stdout)["expired"] is True


def test_cli_silent_reader_exits_2_in_bounded_time():
    with IdCardTwin(pace=False) as t:
        t.silent = True
        t0 = time.monotonic()
        p = run_cli("--port", t.port, "--json")
        assert p.returncode == 2 and "no_device" in p.stderr
        assert time.monotonic() - t0 < 8


def test_twin_module_prints_its_port():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.idcard_twin", "--persona", "hk", "--no-pace"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        p = run_cli("--port", port, "--json")
        assert p.returncode == 0 and json.loads(p.stdout)["card_type"] == "hk_mo_tw"
        proc.stdin.write("remove\n")
        proc.stdin.flush()
        time.sleep(0.2)
        assert run_cli("--port", port, "--timeout", "0.3").returncode == 2
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
