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
    """Every floor of the director (targets by mode, elder text, contrast, a voice prompt, portrait empty share,
    no broken runs) on every shot, in elder mode and in standard type."""
    from sim import uicheck as U

    assert [n.split("-", 1)[1] for n in shots] == [
        "idle-top-bar", "help", "confirm-shrink", "closed", "idle-standard", "help-standard", "idle-elder-again"]
    for name, step in shots.items():
        assert step["overflow"] == [], (name, step["overflow"])
        assert U.flags_of(step) == [], (name, U.flags_of(step), step["empty_share"])
        toggle = "大字模式：开" if step["elder_mode"] else "大字模式：关"
        assert {"再听一遍", "请工作人员帮助", toggle} <= set(step["texts"]), name
    assert [s["elder_mode"] for s in shots.values()] == [True, True, True, True, False, False, True]


@pytest.mark.parametrize("name", ["02-help", "06-help-standard"])
def test_help_panel_shows_its_lines_and_a_close_button(shots, name):
    texts = shots[name]["texts"]
    for want in ("请工作人员帮助", "已通知工作人员，请稍等", "李明", "138 0000 0000", "王芳", "服务站电话",
                 "0531-12345678", "关闭"):
        assert want in texts, want
    assert "请插入社保卡" not in texts  # the panel takes the screen's place


def test_shrink_question_is_full_screen_with_two_answers(shots):
    texts = shots["03-confirm-shrink"]["texts"]
    assert {"把字变小吗？", "变小", "不变，保持大字"} <= set(texts)
    assert "请插入社保卡" not in texts
    assert "请插入社保卡" in shots["04-closed"]["texts"]  # 不变: the screen is back, still in large type
    assert shots["04-closed"]["elder_mode"] is True
