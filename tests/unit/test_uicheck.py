"""The director's measurements: WCAG contrast, sampling a frame, empty rows, theme ratios, floors."""

from __future__ import annotations

import numpy as np
import pytest

from sim import uicheck as U


def test_contrast_of_known_pairs():
    assert U.contrast_ratio((0, 0, 0), (1, 1, 1)) == pytest.approx(21.0)
    assert U.contrast_ratio(U.hex_rgb("#777"), U.hex_rgb("#fff")) == pytest.approx(4.48, abs=0.01)
    assert U.contrast_ratio(U.hex_rgb("#fff"), U.hex_rgb("#777")) == U.contrast_ratio(
        U.hex_rgb("#777"), U.hex_rgb("#fff"))  # order does not matter
    assert U.contrast_ratio(U.hex_rgb("#0B5CAD"), U.hex_rgb("#0B5CAD")) == pytest.approx(1.0)
    # #767676 is the lightest grey that passes on white
    assert U.contrast_ratio(U.hex_rgb("#767676"), (1, 1, 1)) >= 4.5 > U.contrast_ratio(U.hex_rgb("#777"), (1, 1, 1))


def test_hex_round_trip_and_blend():
    assert U.rgb_hex(U.hex_rgb("#0B5CAD")) == "#0B5CAD"
    assert U.blend((0, 0, 0, 0.5), (1, 1, 1)) == pytest.approx((0.5, 0.5, 0.5))
    assert U.blend((1, 0, 0), (0, 0, 1)) == (1, 0, 0)


def _frame(h, w, rgb):
    return np.tile(np.array(rgb, dtype=np.uint8), (h, w, 1))


def test_background_is_the_common_colour_not_the_text():
    f = _frame(20, 40, (247, 245, 239))
    f[5:15, 2:38] = (26, 26, 26)  # more text pixels than background: still not the background
    f[6, 3] = (120, 120, 120)  # anti-aliasing
    bg = U.background_behind(f, U.hex_rgb("#1A1A1A"))
    assert U.rgb_hex(bg) == "#F7F5EF"


def test_text_the_colour_of_its_background_has_contrast_one():
    f = _frame(10, 10, (255, 255, 255))
    bg = U.background_behind(f, (1, 1, 1))
    assert U.contrast_ratio((1, 1, 1), bg) == pytest.approx(1.0)


def test_crop_flips_window_coordinates_and_scales():
    f = np.zeros((100, 200, 3), dtype=np.uint8)
    f[0:10, 0:20] = 255  # top-left corner of the image = window y 90..100
    c = U.crop(f, (0, 90, 20, 100), (200, 100))
    assert c.shape == (10, 20, 3) and (c == 255).all()
    half = U.crop(f, (0, 180, 40, 200), (400, 200))  # a window twice the frame's size
    assert half.shape == (10, 20, 3) and (half == 255).all()
    assert U.crop(f, (-50, -50, -10, -10), (200, 100)).size == 0


def test_empty_rows_share():
    f = _frame(100, 50, (247, 245, 239))
    f[0:10] = (11, 92, 173)  # a top bar
    f[40:50, 20:30] = (0, 0, 0)  # some text
    assert U.empty_rows_share(f) == pytest.approx(0.8)
    assert U.empty_rows_share(f, bg=U.hex_rgb("#0B5CAD")) == pytest.approx(0.1)  # only the bar


def test_theme_ratios_and_low_text_roles():
    sizes = {"title": (34, 46), "body": (20, 30), "button_h": (100, 124), "note": "not a pair"}
    assert U.theme_ratios(sizes) == {"title": 1.353, "body": 1.5, "button_h": 1.24}
    low = U.low_ratios(sizes)
    assert [r["role"] for r in low] == ["title"]  # button_h is a box size, body meets 1.5


def test_the_real_theme_is_measured():
    from screens import theme

    ratios = U.theme_ratios(theme.SIZES)
    assert set(ratios) >= {"title", "body"}
    assert all(r > 1 for r in ratios.values())  # elder mode is bigger; whether 1.5x is the UI run's report


def test_floors():
    assert U.text_too_small(22, elder=True) and not U.text_too_small(26, elder=True)
    assert not U.text_too_small(18, elder=False)  # the elder floor only
    assert U.target_too_small(260, 68, elder=True) and not U.target_too_small(124, 124, elder=True)
    assert U.target_too_small(59, 200, elder=False) and not U.target_too_small(60, 60, elder=False)
    assert U.contrast_too_low(4.48) and not U.contrast_too_low(4.5)
    assert U.empty_share_too_high(0.69) and not U.empty_share_too_high(0.5) and not U.empty_share_too_high(None)


def test_flags_of_an_entry():
    entry = {"small_text": [{"sp": 22}], "small_targets": [], "low_contrast": [], "no_voice": [{"screen": "idle"}],
             "empty_share": 0.7}
    assert U.flags_of(entry) == ["small_text", "no_voice", "empty_share"]
    assert U.flags_of({"empty_share": None}) == []
    assert U.flags_of({"broken_runs": [{"text": "已认证（2027-03-31 前）", "run": "（2027-03-31 前）"}]}) == ["broken_runs"]


def test_summary_counts_failing_screenshots_and_names_the_worst():
    report = {
        "low_ratio": [{"role": "body", "normal": 24, "elder": 30, "ratio": 1.25}],
        "steps": [
            {"name": "01-idle", "elder_mode": True, "flags": ["small_text", "no_voice"],
             "small_text": [{"text": "大字模式：开", "sp": 22.0}], "small_targets": [], "low_contrast": [],
             "empty_share": 0.76},
            {"name": "06-pension", "elder_mode": True, "flags": ["small_text", "small_targets"],
             "small_text": [{"text": "2026-11", "sp": 20.0}],
             "small_targets": [{"text": "大字模式：开", "w_dp": 260, "h_dp": 68}], "low_contrast": [],
             "empty_share": 0.4},
            {"name": "20-standard", "elder_mode": False, "flags": [], "small_text": [], "small_targets": [],
             "low_contrast": [], "empty_share": None},
        ],
    }
    s = U.summarize(report)
    assert s["screenshots"] == 3 and s["by_mode"] == {"elder": 2, "standard": 1}
    assert s["failing"] == {"small_text": ["01-idle", "06-pension"], "small_targets": ["06-pension"],
                            "no_voice": ["01-idle"]}
    assert s["smallest_text"][0] == "20.0 sp 06-pension '2026-11'"
    assert s["most_empty"][0] == "76% 01-idle"
    assert U.findings(s) == 5
    line = U.summary_line(s)
    assert "small_text 2/3" in line and "low_ratio body 1.25" in line and "68 dp" in line
    assert U.summary_line(U.summarize({"steps": []})) == "all 0 screenshots pass"
