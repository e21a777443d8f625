"""The real app under Xvfb, driven by real touches through every journey and error screen, in both
orientations, against the real stack (pcscd + vpcd card twin, mutual-TLS backend, printer twin on a pty).

One scripted demo run produces screenshots, a report per journey (what was on screen, text that did not
fit, targets that were too small, the elder-friendly measurements) and receipt PNGs; the tests below check them.

The elder-friendly floors (issue 8: type, elder/standard ratio, targets by mode, contrast, a voice prompt on
every screen, portrait empty share, no line break inside a number/date/bracket) fail the run: test_elder_friendly_floors
writes a summary per journey and fails with the figures (KIOSK_ELDER_CHECKS=report turns a failure into an xfail, for
a look at the figures while a screen is being reworked).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORIENTATIONS = ("landscape", "portrait")
JOURNEYS = ("pension", "faults", "identity", "filings")
# the same journeys again in standard type (`kiosk demo --mode standard`)
STANDARD = ("pension-standard", "faults-standard", "identity-standard", "filings-standard")
RUNS = JOURNEYS + STANDARD
# report-only (xfail with the figures) until the screens are fixed; "strict" makes any finding fail
ELDER_CHECKS_STRICT = os.environ.get("KIOSK_ELDER_CHECKS", "strict").strip().lower() != "report"
# one scripted demo (16 runs of the real app) is set up by the first test: more than the suite's 300 s default
pytestmark = pytest.mark.timeout(2400)
ELDER_KEYS = {"small_text", "small_targets", "low_contrast", "no_voice", "empty_share", "broken_runs", "flags", "spoken"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory, log_files):
    out = tmp_path_factory.mktemp("demo")
    log = out / "demo.log"
    log_files.append(log)
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # no display: the scripted demo under Xvfb
    proc = subprocess.run(
        [sys.executable, "-m", "kiosk", "--log-file", str(log), "demo", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=2400,
    )
    (out / "stdout.txt").write_text(proc.stdout + proc.stderr)
    log_files.append(out / "stdout.txt")
    return out, proc


def _report(out: Path, orientation: str, journey: str) -> dict:
    return json.loads((out / "screens" / f"{orientation}-{journey}-report.json").read_text(encoding="utf-8"))


def test_demo_runs_every_journey_in_both_orientations(demo):
    out, proc = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {f"{o}/{j}": 0 for o in ORIENTATIONS for j in RUNS}


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("journey", RUNS)
def test_screens_fit_and_targets_are_big(demo, orientation, journey):
    out, _ = demo
    rep = _report(out, orientation, journey)
    assert not rep["errors"], rep["errors"]
    assert rep["steps"], "no screenshots"
    for step in rep["steps"]:
        png = Path(step["png"])
        assert png.exists() and png.stat().st_size > 10_000, png
        assert step["window"] == ([1280, 800] if orientation == "landscape" else [1080, 1920])
        # the old 60 dp floor holds in every mode (the elder 120 dp floor is in test_elder_friendly_floors)
        under_60 = [t for t in step["small_targets"] if min(t["w_dp"], t["h_dp"]) < 60]
        assert under_60 == [], (step["name"], under_60)
        assert step["overflow"] == [], (step["name"], step["overflow"])
        # the elder measurements are there on every screenshot (whether they pass is reported below)
        assert ELDER_KEYS <= set(step), (step["name"], ELDER_KEYS - set(step))
        assert (step["empty_share"] is None) == (orientation == "landscape"), step["name"]
        if not step["name"].startswith(("19", "20")):  # the faults journey switches it at its end
            assert step["elder_mode"] is (journey not in STANDARD), step["name"]


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("journey", RUNS)
def test_elder_friendly_floors(demo, orientation, journey):
    """Elder text >= 26 sp, every text role >= 1.5x in elder mode, targets >= 120 dp (elder) / 60 dp,
    contrast >= 4.5:1, a voice prompt since each screen was entered, portrait <= 50 % empty."""
    from sim import uicheck as U

    out, _ = demo
    rep = _report(out, orientation, journey)
    assert rep["steps"], "no screenshots"
    summary = U.summarize(rep)
    if journey != JOURNEYS[0]:
        summary["low_ratio"] = []  # the theme's ratios are counted once per run, on the first journey
    (out / f"elder-checks-{orientation}-{journey}.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    n = U.findings(summary)
    if n == 0:
        return
    line = f"{orientation}/{journey}: {U.summary_line(summary)}"
    print(line)
    if ELDER_CHECKS_STRICT:
        pytest.fail(line)
    pytest.xfail(f"elder checks report-only (KIOSK_ELDER_CHECKS=report) — {line}")


@pytest.mark.parametrize("journey", ["pension", "pension-standard"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_pension_journey_shows_what_the_resident_needs(demo, orientation, journey):
    out, _ = demo
    steps = {s["name"]: s for s in _report(out, orientation, journey)["steps"]}
    assert [s.split("-", 1)[1] for s in steps] == [
        "idle", "reading", "pin", "pin-five-digits", "menu", "pension", "take-card", "idle-again",
    ]
    assert steps["01-idle"]["title"] == "请插入社保卡"
    assert "王*兰，您好\n请输入 6 位密码，输入完自动确认" in steps["03-pin"]["texts"]
    assert "养老金查询" in steps["05-menu"]["texts"]
    pension = steps["06-pension"]["texts"]
    for expected in ("城乡居民基本养老保险", "238.50 元", "15 年", "7532.40 元", "王*兰", "打印回执"):
        assert expected in pension, expected
    assert steps["07-take-card"]["title"] == "请取走您的社保卡"
    # nothing of the resident is left once the card is out
    assert not any("王" in t for t in steps["08-idle-again"]["texts"])
    assert not any("王秀兰" in t or "370102195203140527" in t for s in steps.values() for t in s["texts"])


@pytest.mark.parametrize("journey", ["faults", "faults-standard"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_every_fault_has_its_own_screen(demo, orientation, journey):
    out, _ = demo
    steps = {s["name"]: s for s in _report(out, orientation, journey)["steps"]}
    expect = {
        "10-pin-wrong": ("error", "密码不对"),
        "11-backend-offline": ("error", "网络连接不上"),
        "12-backend-error": ("error", "系统忙，暂时查不了"),
        "13-printer-out-show-qr": ("show_qr", "打印机暂时不能打印"),
        "14-pin-blocked": ("error", "密码已锁定"),
        "15-needs-security-module": ("error", "这张卡需要在窗口办理"),
        "16-not-sscard": ("error", "这不是社保卡"),
        "17-no-pension-record": ("pension", "暂无养老保险参保记录"),
    }
    for name, (screen, title) in expect.items():
        assert (steps[name]["screen"], steps[name]["title"]) == (screen, title), name
    assert any("还可以再试 2 次" in t for t in steps["10-pin-wrong"]["texts"])
    assert any(t.startswith("还有") and "秒返回首页" in t for t in steps["18-countdown"]["texts"])
    assert steps["19-idle-english"]["title"] == "Please insert your social security card"
    assert steps["20-idle-english-standard-type"]["elder_mode"] is False


def test_receipt_qr_decodes_to_a_url_the_backend_confirms(demo):
    import zxingcpp
    from PIL import Image

    from backend.server import start_server
    from kiosk.backend_client import BackendClient

    out, _ = demo
    receipts = sorted((out / "receipts").glob("*-pension-receipt-*.png"))
    assert len(receipts) == 2, receipts  # one per orientation
    for png in receipts:
        orientation = png.name.split("-")[0]
        codes = zxingcpp.read_barcodes(Image.open(png))
        assert len(codes) == 1, png
        url = codes[0].text
        assert "/v1/receipts/" in url and "/verify" in url
        # the backend that issued it comes back up on its own database and PKI
        server = start_server(out / f"stack-{orientation}-pension" / "backend")
        try:
            client = BackendClient(server.url, server.ca_path, server.client_cert, server.client_key)
            here = urlsplit(server.url)
            u = urlsplit(url)
            moved = urlunsplit((u.scheme, here.netloc, u.path, u.query, u.fragment))
            v = client.verify_receipt(moved)
            assert getattr(v, "genuine", False), v
            assert v.service == "pension_query" and v.name_masked == "王*兰" and v.id_masked.endswith("0527")
            forged = client.verify_receipt(moved.replace("sig=", "sig=0"))
            assert not getattr(forged, "genuine", True)
        finally:
            server.stop()


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_each_credential_allows_what_its_level_allows(demo, orientation):
    out, _ = demo
    steps = {s["name"]: s for s in _report(out, orientation, "identity")["steps"]}
    # ID card alone: may report a lost card, may not see the pension
    idcard_menu = steps["30-idcard-menu"]["texts"]
    assert "社保卡临时挂失" in idcard_menu and "养老金查询" not in idcard_menu
    assert "创业担保贷款申请" not in idcard_menu  # needs card + PIN or the e-card
    assert any("您用身份证登录" in t for t in idcard_menu)
    assert steps["31-card-loss-service-page"]["screen"] == "service_info"
    assert "办理依据" in steps["31-card-loss-service-page"]["texts"]  # 八公开 before the resident starts
    assert steps["32-card-loss-filed"]["title"] == "已受理"
    assert any(t.startswith("F") for t in steps["32-card-loss-filed"]["texts"])  # the filing's reference
    assert steps["33-take-idcard"]["title"] == "请取走您的身份证"
    assert steps["34-idcard-expired"]["title"] == "身份证已过期"
    assert steps["35-foreign-card-menu"]["screen"] == "menu"
    # the electronic card is as strong as card + PIN
    assert steps["36-scan-camera"]["screen"] == "scan"
    ecard_menu = steps["37-ecard-menu"]["texts"]
    assert "养老金查询" in ecard_menu and "社保卡临时挂失" in ecard_menu and "创业担保贷款申请" in ecard_menu
    assert "238.50 元" in steps["38-ecard-pension"]["texts"]
    assert steps["39-ecard-unknown"]["title"] == "认不出这个二维码"
    assert steps["39b-ecard-expired"]["title"] == "二维码已过期"
    assert steps["40-ecard-revoked"]["title"] == "这个二维码已作废"
    genuine = steps["41-receipt-genuine"]["texts"]
    assert steps["41-receipt-genuine"]["title"] == "这是本站出具的真实回执"
    assert "社保卡临时挂失" in genuine and "王*兰" in genuine
    assert steps["42-receipt-forged"]["title"] == "无法确认这张回执"


def test_card_loss_receipts_are_printed(demo):
    out, _ = demo
    assert len(sorted((out / "receipts").glob("*-identity-receipt-*.png"))) == 2


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_every_shipped_service_is_filed_through_the_app(demo, orientation):
    from sim.journeys import FILING_ORDER

    out, _ = demo
    steps = {s["name"]: s for s in _report(out, orientation, "filings")["steps"]}
    for n, key in enumerate(FILING_ORDER[:-1]):
        name = f"{30 + n:02d}-{key}"
        assert steps[f"{name}-a-service-page"]["screen"] == "service_info", key
        assert steps[f"{name}-b-review"]["screen"] == "review", key
        filed = steps[f"{name}-c-filed"]
        assert (filed["screen"], filed["title"]) == ("filed", "已受理"), key
        assert any(t.startswith("F2") for t in filed["texts"]), key  # the backend's own number
    # offline: accepted here with a local number, sent by the outbox once the backend was back
    queued = steps["37-public_welfare_job-c-filed"]
    assert queued["title"] == "已受理，待上传"
    local = next(t for t in queued["texts"] if t.startswith("L2"))
    mine = steps["39-my-filings"]["texts"]
    assert any(t.startswith("公益性岗位申请\nF2") for t in mine)  # uploaded: the backend's number
    assert not any("待上传" in t for t in mine)
    assert steps["34-business_loan-signature"]["screen"] == "signature"
    assert steps["33-benefit_certification-face-review"]["screen"] == "capture"
    assert steps["39-card_loss-c-filed"]["title"] == "已受理"
    # nothing personal in full on any screen
    assert not any("370102" in t and "*" not in t for s in steps.values() for t in s["texts"])
    # the backend has the offline filing under the same local number, once
    import sqlite3

    db = sqlite3.connect(out / f"stack-{orientation}-filings" / "backend" / "backend.sqlite3")
    try:
        assert db.execute("SELECT COUNT(*) FROM filings WHERE local_number = ?", (local,)).fetchone()[0] == 1
    finally:
        db.close()


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_the_clerk_sees_the_forwarded_filings_masked(demo, orientation):
    out, _ = demo
    html = (out / "worklist" / f"{orientation}-worklist.html").read_text(encoding="utf-8")
    assert "创业担保贷款申请" in html and "公益性岗位申请" in html  # the two forwarded services
    assert "李*国" in html and "李建国" not in html  # fictional demo person, masked
    if shutil.which("chromium"):
        assert (out / "worklist" / f"{orientation}-worklist.png").stat().st_size > 10_000
