"""The top bar's 再听一遍 / 请工作人员帮助 / 大字模式 targets, the help panel and the 把字变小吗？ question, rendered by
the real app under Xvfb in both orientations (tests/ui/overlay_shots.py), checked by the director."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run")


@pytest.fixture(scope="module", params=("landscape", "portrait"))
def shots(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"overlays-{request.param}")
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"} | {"PYTHONPATH": str(ROOT)}
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1920x24", sys.executable, str(ROOT / "tests/ui/overlay_shots.py"),
           str(out)] + (["--portrait"] if request.param == "portrait" else [])
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / f"{request.param}-report.json").read_text(encoding="utf-8"))
    return {s["name"]: s for s in report["steps"]}


def test_top_bar_buttons_are_full_size_and_nothing_overflows(shots):
    for name, step in shots.items():
        assert step["small_targets"] == [], (name, step["small_targets"])
        assert step["small_text"] == [], (name, step["small_text"])
        assert step["overflow"] == [], (name, step["overflow"])
        assert step["low_contrast"] == [], (name, step["low_contrast"])
        assert step["broken_runs"] == [], (name, step["broken_runs"])
        assert {"再听一遍", "请工作人员帮助", "大字模式：开"} <= set(step["texts"]), name
    assert shots["01-idle-top-bar"]["empty_share"] in (None,) or shots["01-idle-top-bar"]["empty_share"] < 0.5


def test_help_panel_shows_its_lines_and_a_close_button(shots):
    texts = shots["02-help"]["texts"]
    for want in ("请工作人员帮助", "已通知工作人员，请稍候", "志愿者", "李明", "138 0000 0000", "关闭"):
        assert want in texts, want
    assert "请插入社保卡" not in texts  # the panel takes the screen's place


def test_shrink_question_is_full_screen_with_two_answers(shots):
    texts = shots["03-confirm-shrink"]["texts"]
    assert {"把字变小吗？", "变小", "不变"} <= set(texts)
    assert "请插入社保卡" not in texts
    assert "请插入社保卡" in shots["04-closed"]["texts"]  # closed: the screen is back
