"""`kiosk outbox list|sync` as a technician runs them: a process of its own, a config file, exit codes
0 (empty) / 75 (backend unreachable) / 1 (refused items remain) / 78 (config), and masked output."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.outbox import Outbox

ROOT = Path(__file__).resolve().parents[2]
NAME, SSN, PHONE = "王秀兰", "370102195203140527", "13912345678"
NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def config(tmp_path, stub) -> Path:
    data = tmp_path / "kiosk"
    p = tmp_path / "kiosk.toml"
    p.write_text(f"""
[terminal]
id = "demo-terminal-01"
site_id = "demo-site-01"
site_name = "示范镇人社服务站"
data_dir = "{data}"

[backend]
url = "{stub.url}"
ca = "{stub.pki.ca_cert}"
client_cert = "{stub.pki.client_cert}"
client_key = "{stub.pki.client_key}"
connect_timeout = 2.0
read_timeout = 5.0
""", encoding="utf-8")
    return p


def queue(config: Path, service: str = "jiuye_dengji") -> str:
    data = config.parent / "kiosk"
    with Outbox(data / "outbox.sqlite3", data / "outbox.key") as box:
        item = box.put_filing(service=service, person={"ssn": SSN, "name": NAME, "credential": "id_card"},
                              answers={"phone": PHONE}, created_at=NOW)
    return item.local_number


def kiosk(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_list_is_masked_and_sync_empties_the_outbox(config):
    numbers = [queue(config), queue(config)]
    got = kiosk("outbox", "list", "--config", str(config), "--json")
    assert got.returncode == 0, got.stderr
    rows = json.loads(got.stdout)
    assert [r["local_number"] for r in rows] == numbers
    assert set(rows[0]) >= {"local_number", "service", "created", "attempts", "last_error", "state"}
    for text in (got.stdout, got.stderr):
        assert NAME not in text and SSN not in text and PHONE not in text
    table = kiosk("outbox", "list", "--config", str(config))
    assert table.returncode == 0 and numbers[0] in table.stdout and NAME not in table.stdout
    done = kiosk("outbox", "sync", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(kiosk("outbox", "list", "--config", str(config), "--json").stdout) == []


def test_sync_with_the_backend_away_exits_75(config, stub):
    number = queue(config)
    stub.stop()
    got = kiosk("outbox", "sync", "--config", str(config))
    assert got.returncode == 75, got.stdout + got.stderr
    rows = json.loads(kiosk("outbox", "list", "--config", str(config), "--json").stdout)
    assert [(r["local_number"], r["state"], r["attempts"]) for r in rows] == [(number, "pending", 1)]
    assert rows[0]["last_error"].startswith("offline")


def test_sync_with_refused_items_exits_1_and_lists_them(config):
    bad = queue(config, service="unknown_thing")
    queue(config)
    got = kiosk("outbox", "sync", "--config", str(config))
    assert got.returncode == 1, got.stdout + got.stderr
    rows = json.loads(kiosk("outbox", "list", "--config", str(config), "--json").stdout)
    assert [(r["local_number"], r["state"]) for r in rows] == [(bad, "failed_permanently")]
    assert "unknown_service" in rows[0]["last_error"]


def test_empty_or_missing_outbox_and_config_errors(config, tmp_path):
    assert kiosk("outbox", "sync", "--config", str(config)).returncode == 0
    assert json.loads(kiosk("outbox", "list", "--config", str(config), "--json").stdout) == []
    assert not (tmp_path / "kiosk" / "outbox.key").exists()  # nothing made just to say it is empty
    bad = tmp_path / "bad.toml"
    bad.write_text("[terminal]\nid = 1\n")
    assert kiosk("outbox", "list", "--config", str(bad), "--json").returncode == 78


def test_a_key_file_readable_by_others_is_a_config_error(config, tmp_path):
    queue(config)
    os.chmod(tmp_path / "kiosk" / "outbox.key", 0o644)
    got = kiosk("outbox", "list", "--config", str(config), "--json")
    assert got.returncode == 78 and "chmod 600" in got.stderr
