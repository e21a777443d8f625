"""Line breaks by character, never inside a number, a date or a short bracketed phrase (screens.linebreak)."""

from __future__ import annotations

import pytest

from screens.linebreak import NBSP, break_lines, protected_runs, split_runs, units


def w(s: str) -> float:
    """A monospaced measure: a CJK character 2, anything else 1."""
    return sum(2 if ord(c) > 0x2E80 else 1 for c in s)


def test_chinese_breaks_by_character_not_at_ascii_spaces():
    out = break_lines("已认证（2027-03-31 前）", 17, w)
    assert out.split("\n") == ["已认证", f"（2027-03-31{NBSP}前）"]


def test_a_bracketed_phrase_stays_whole_when_it_fits():
    for width in range(17, 40):
        lines = break_lines("您的资格认证状态：已认证（2027-03-31 前）", width, w).split("\n")
        assert any(f"（2027-03-31{NBSP}前）" in ln for ln in lines), (width, lines)
        assert all(w(ln) <= width for ln in lines)


@pytest.mark.parametrize("text,run", [
    ("本月应发养老金合计为 238.50 元，已经发放到您的社保卡", "238.50 元"),
    ("请于2027年3月31日之前到村服务站办理资格认证", "2027年3月31日"),
    ("您的办件编号是F20270331-0001，请妥善保存", "F20270331-0001"),
    ("累计缴费 15 年，个人账户余额 7532.40 元", "7532.40 元"),
    ("营业时间 08:30 至 17:00，节假日除外", "17:00"),
    ("志愿者李明，电话 138 0000 0000，随时可以打", "138 0000 0000"),
])
def test_numbers_and_dates_never_break_inside(text, run):
    for width in range(len(run) * 2 + 2, 60):
        lines = break_lines(text, width, w).split("\n")
        assert any(run.replace(" ", NBSP) in ln for ln in lines), (width, lines)
        assert split_runs(lines, text) == []


def test_closing_punctuation_never_starts_a_line_and_an_opening_bracket_never_ends_one():
    for width in range(6, 30):
        lines = break_lines("请取走您的社保卡，谢谢。（请带好随身物品）再见", width, w).split("\n")
        assert not any(ln[:1] in "，。）" for ln in lines), lines
        assert not any(ln[-1:] in "（" for ln in lines), lines


def test_existing_newlines_stay_and_text_that_fits_is_unchanged():
    assert break_lines("王*兰，您好\n请输入 6 位密码", 100, w).replace(NBSP, " ") == "王*兰，您好\n请输入 6 位密码"
    assert break_lines("", 10, w) == ""


def test_a_piece_wider_than_a_line_is_cut_by_character():
    lines = break_lines("1234567890123", 5, w).split("\n")
    assert "".join(lines) == "1234567890123" and all(w(ln) <= 5 for ln in lines)


def test_units_and_runs():
    assert units("已认证（2027-03-31 前）") == ["已", "认", "证", "（2027-03-31 前）"]
    assert "238.50 元" in protected_runs("合计 238.50 元")
    assert split_runs(["已认证（2027-03-31", "前）"], "已认证（2027-03-31 前）") == ["（2027-03-31 前）"]
    assert split_runs(["238.", "50 元"], "238.50 元") == ["238.50 元"]
