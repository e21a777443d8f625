"""`kiosk devices` against the demo stack: every configured device answers with its status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _toml(cfg) -> str:
    b, d, t = cfg.backend, cfg.devices, cfg.terminal
    return f"""
[terminal]
id = "{t.id}"
site_id = "{t.site_id}"
site_name = "{t.site_name}"

[backend]
url = "{b.url}"
ca = "{b.ca}"
client_cert = "{b.client_cert}"
client_key = "{b.client_key}"

[devices]
sscard_reader = "{d.sscard_reader}"
printer_port = "{d.printer_port}"
idcard_port = "{d.idcard_port}"
scanner_port = "{d.scanner_port}"
"""


def test_devices_lists_each_device_with_its_status(tmp_path):
    from sim.demo import DemoStack

    stack = DemoStack(tmp_path / "stack")
    try:
        cfg = stack.start()
        path = tmp_path / "kiosk.toml"
        path.write_text(_toml(cfg), encoding="utf-8")
        run = subprocess.run(
            [sys.executable, "-m", "kiosk", "devices", "--config", str(path), "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert run.returncode == 0, run.stderr
        rows = {r["device"]: r["status"] for r in json.loads(run.stdout)}
        assert rows["sscard"] == "online"
        assert rows["printer"] == "online, paper full"
        assert rows["idcard"] == "SAM online"
        assert rows["scanner"] == "online"
        assert rows["backend"] == "online"
        stack.set_paper("out")
        stack.backend_mode("offline")
        run = subprocess.run(
            [sys.executable, "-m", "kiosk", "devices", "--config", str(path), "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        rows = {r["device"]: r["status"] for r in json.loads(run.stdout)}
        assert rows["printer"] == "online, paper out" and rows["backend"] == "offline"
        assert run.returncode == 1
    finally:
        stack.stop()


def test_a_bad_config_names_the_key_and_the_fix(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text('[terminal]\nid = "T1"\nsite_id = "S"\nsite_name = "x"\nlocale = "fr"\n', encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "kiosk", "devices", "--config", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 78
    assert "[terminal] locale" in run.stderr and "[backend]" in run.stderr
