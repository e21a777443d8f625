"""`python -m kiosk.cli.card read` as a technician runs it, against a virtual card in pcscd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.vcard import NOT_SSCARD
from tests.wire.conftest import CARD_READER, swap_gap

pytestmark = [pytest.mark.wire, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli.card", "read", "--reader", CARD_READER, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=ROOT,
    )


def test_masked_json_by_default(vcard):
    vcard("x_ending")
    r = cli("--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["name"] == "陈*珍"
    assert d["ssn"] == "3205**********104X"
    assert d["masked"] is True
    assert "32058319710520104X" not in r.stdout and "陈淑珍" not in r.stdout
    assert d["birth_date"] == "1971-**-**"
    assert (d["issue_date"], d["expiry_date"]) == ("2016-08-08", "2026-08-08")
    assert (d["card_version"], d["gender"], d["region_code"]) == ("2.00", "2", "320500")


def test_reveal(vcard):
    vcard("rare_name")
    r = cli("--json", "--reveal")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["name"] == "阿依古丽·买买提依明·艾𠮷尔江"
    assert (d["ssn"], d["card_number"], d["birth_date"]) == ("650102198008080224", "M65010006", "1980-08-08")
    assert d["masked"] is False


def test_human_output(vcard):
    vcard("elder")
    r = cli()
    assert r.returncode == 0, r.stderr
    assert "姓名：王*兰" in r.stdout and "有效期至：2028-06-01" in r.stdout


@pytest.mark.parametrize(
    ("card", "code", "word"),
    [(None, 2, "没有卡"), ("gen3", 3, "PSAM"), (NOT_SSCARD, 4, "不是社保卡")],
    ids=["no-card", "needs-sam", "not-sscard"],
)
def test_exit_codes(vcard, card, code, word):
    if card is None:
        swap_gap()
    else:
        vcard(card)
    r = cli("--json")
    assert r.returncode == code
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and word in r.stderr


def test_unknown_reader_exits_2(pcscd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "kiosk.cli.card", "read", "--reader", "No Such Reader 99"],
        capture_output=True, text=True, timeout=30, env=env, cwd=ROOT,
    )
    assert r.returncode == 2 and "读卡器" in r.stderr
