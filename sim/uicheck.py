"""Pure measurements behind the director's elder-friendly checks (no Kivy here, so they are unit-tested).

Floors (issue 8): elder-mode text at least 26 sp; every text role at least 1.5x bigger in elder mode;
touch targets at least 120 dp in elder mode and 60 dp in standard; text/background contrast at least
4.5:1 (WCAG 2.x); a voice prompt on every screen; portrait screens at most 50 % empty; no line break inside
a number, a date or a bracketed phrase (broken_runs: the director reads the lines a label drew).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

ELDER_MIN_SP = 26.0
MIN_ELDER_RATIO = 1.5
TARGET_DP = {True: 120.0, False: 60.0}  # by elder mode
MIN_CONTRAST = 4.5
MAX_EMPTY_SHARE = 0.5
# theme roles measured in dp (sizes of boxes, not of type); every other role is a text role in sp
DP_ROLES = frozenset({"button_h", "key", "pad"})

Rgb = tuple[float, float, float]  # 0..1


# -- WCAG 2.x contrast
def _channel(c: float) -> float:
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(rgb: Sequence[float]) -> float:
    r, g, b = (_channel(float(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def hex_rgb(code: str) -> Rgb:
    """'#777' or '#0B5CAD' -> (r, g, b) in 0..1."""
    h = code.lstrip("#")
    if len(h) == 3:
        h = "".join(ch * 2 for ch in h)
    return tuple(int(h[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def rgb_hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, float(c))) * 255):02X}" for c in rgb[:3])


def blend(fg: Sequence[float], bg: Sequence[float]) -> Rgb:
    """A colour with alpha (rgba, 0..1) drawn over an opaque background: what the eye gets."""
    a = float(fg[3]) if len(fg) > 3 else 1.0
    return tuple(float(f) * a + float(b) * (1 - a) for f, b in zip(fg[:3], bg[:3], strict=True))  # type: ignore[return-value]


# -- sampling a rendered frame (an H x W x 3 uint8 array, row 0 at the top)
def _packed(pixels: np.ndarray) -> np.ndarray:
    p = pixels.reshape(-1, pixels.shape[-1])[:, :3].astype(np.uint32)
    return (p[:, 0] << 16) | (p[:, 1] << 8) | p[:, 2]


def _unpack(v: int) -> Rgb:
    return ((v >> 16) & 255) / 255, ((v >> 8) & 255) / 255, (v & 255) / 255


def dominant_colour(pixels: np.ndarray) -> Rgb | None:
    if pixels.size == 0:
        return None
    values, counts = np.unique(_packed(pixels), return_counts=True)
    return _unpack(int(values[int(np.argmax(counts))]))


def background_behind(pixels: np.ndarray, text_rgb: Sequence[float], near: float = 0.2) -> Rgb | None:
    """The most common colour of the region that is not close to the text colour (anti-aliased glyph edges
    are many colours, each rare; the background is one colour, common). Falls back to the most common
    colour of all when everything is close to the text (text the same colour as its background)."""
    if pixels.size == 0:
        return None
    px = pixels.reshape(-1, pixels.shape[-1])[:, :3].astype(np.float32) / 255
    dist = np.abs(px - np.asarray(text_rgb[:3], dtype=np.float32)).max(axis=1)
    far = pixels.reshape(-1, pixels.shape[-1])[dist > near]
    return dominant_colour(far if len(far) else pixels)


def crop(frame: np.ndarray, rect: Sequence[float], window_size: Sequence[float]) -> np.ndarray:
    """The pixels of a window rect (x0, y0, x1, y1 in window coordinates, origin at the bottom left) in a
    frame whose row 0 is the top; scaled when the frame's size differs from the window's."""
    h, w = frame.shape[:2]
    sx, sy = w / float(window_size[0]), h / float(window_size[1])
    x0, x1 = (max(0, min(w, round(v * sx))) for v in (rect[0], rect[2]))
    top, bottom = (max(0, min(h, round(h - v * sy))) for v in (rect[3], rect[1]))
    return frame[top:bottom, x0:x1]


def empty_rows_share(frame: np.ndarray, bg: Sequence[float] | None = None, tol: int = 6) -> float:
    """Share of the frame's rows that hold nothing but the background colour (the most common colour of
    the frame unless given)."""
    if frame.size == 0:
        return 0.0
    colour = bg if bg is not None else dominant_colour(frame)
    if colour is None:
        return 0.0
    ref = np.asarray([round(c * 255) for c in colour[:3]], dtype=np.int16)
    diff = np.abs(frame[..., :3].astype(np.int16) - ref).max(axis=2)
    empty = (diff <= tol).all(axis=1)
    return float(empty.mean())


# -- the theme
def theme_ratios(sizes: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Elder/standard ratio of every role of the theme's (normal, elder) size table."""
    out = {}
    for role, pair in sizes.items():
        try:
            normal, elder = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue  # not a (normal, elder) pair
        if normal > 0:
            out[role] = round(elder / normal, 3)
    return out


def low_ratios(sizes: Mapping[str, Sequence[float]], dp_roles: Iterable[str] = DP_ROLES) -> list[dict]:
    """Text roles whose elder size is less than 1.5x the standard one."""
    skip = set(dp_roles)
    return [
        {"role": role, "normal": sizes[role][0], "elder": sizes[role][1], "ratio": r}
        for role, r in theme_ratios(sizes).items()
        if role not in skip and r < MIN_ELDER_RATIO - 1e-9
    ]


# -- per-widget floors
def text_too_small(size_sp: float, elder: bool) -> bool:
    return elder and size_sp < ELDER_MIN_SP - 0.05


def target_too_small(w_dp: float, h_dp: float, elder: bool) -> bool:
    floor = TARGET_DP[bool(elder)]
    return min(w_dp, h_dp) < floor - 0.5


def contrast_too_low(ratio: float) -> bool:
    return ratio < MIN_CONTRAST - 1e-9


def empty_share_too_high(share: float | None) -> bool:
    return share is not None and share > MAX_EMPTY_SHARE


CHECKS = ("small_text", "small_targets", "low_contrast", "no_voice", "empty_share", "broken_runs")


def flags_of(entry: Mapping) -> list[str]:
    """Names of the checks a screenshot's entry fails."""
    out = [k for k in ("small_text", "small_targets", "low_contrast", "no_voice", "broken_runs") if entry.get(k)]
    if empty_share_too_high(entry.get("empty_share")):
        out.append("empty_share")
    return out


def short(text: str, n: int = 40) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= n else t[: n - 1] + "…"


# -- a run's findings, for the test's summary and the team
def summarize(report: Mapping) -> dict:
    """Counts and worst offenders of one journey's report (the director's JSON)."""
    steps = report.get("steps", [])
    failing = {c: [s["name"] for s in steps if c in s.get("flags", [])] for c in CHECKS}
    texts = [(t["sp"], s["name"], t["text"]) for s in steps for t in s.get("small_text", [])]
    targets = [(min(t["w_dp"], t["h_dp"]), s["name"], t["text"]) for s in steps for t in s.get("small_targets", [])]
    pairs = [(p["ratio"], s["name"], p["text"]) for s in steps for p in s.get("low_contrast", [])]
    shares = [(s["empty_share"], s["name"]) for s in steps if s.get("empty_share") is not None]
    broken = [(s["name"], b["run"]) for s in steps for b in s.get("broken_runs", [])]
    return {
        "screenshots": len(steps),
        "by_mode": {m: sum(1 for s in steps if bool(s.get("elder_mode")) == (m == "elder")) for m in ("elder", "standard")},
        "failing": {c: names for c, names in failing.items() if names},
        "low_ratio": [f"{r['role']} {r['ratio']}" for r in report.get("low_ratio", [])],
        "smallest_text": [f"{sp} sp {name} {text!r}" for sp, name, text in sorted(texts)[:3]],
        "smallest_targets": [f"{d} dp {name} {text!r}" for d, name, text in sorted(targets)[:3]],
        "lowest_contrast": [f"{r}:1 {name} {text!r}" for r, name, text in sorted(pairs)[:3]],
        "most_empty": [f"{round(v * 100)}% {name}" for v, name in sorted(shares, reverse=True)[:3]],
        "broken_runs": [f"{name} {run!r}" for name, run in broken[:3]],
    }


def summary_line(summary: Mapping) -> str:
    """One line: how many screenshots fail each check, and the worst of each."""
    n = summary["screenshots"]
    parts = [f"{c} {len(v)}/{n}" for c, v in summary["failing"].items()]
    if summary["low_ratio"]:
        parts.append("low_ratio " + ", ".join(summary["low_ratio"]))
    for key in ("smallest_text", "smallest_targets", "lowest_contrast", "most_empty", "broken_runs"):
        if summary.get(key):
            parts.append(f"{key}: {summary[key][0]}")
    return "; ".join(parts) if parts else f"all {n} screenshots pass"


def findings(summary: Mapping) -> int:
    return sum(len(v) for v in summary["failing"].values()) + len(summary["low_ratio"])
