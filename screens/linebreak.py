"""Line breaks for Chinese text: by character, never inside a number, a date, a time, a Latin word or a short
bracketed phrase, never before closing punctuation and never after an opening bracket.

Kivy breaks lines only at ASCII spaces and cuts a word longer than the line wherever it overflows: a certification
row "已认证（2027-03-31 前）" broke at its space, a long Chinese sentence could break inside an amount. The app
installs BreakingLabel (install()) as the core label of every plain (non-markup) Label: it lays its text out with
break_lines() into explicit lines first, so Kivy only draws them. The widget's text is unchanged.

Pure functions first (unit-tested without Kivy); the Kivy part is at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable

NBSP = "\u00a0"
WORD_JOINER = "\u2060"
# a bracketed phrase longer than this may break inside (it would not fit a line anyway)
MAX_BRACKET = 16
_CLOSE = "，。、；：？！）》」』】〕〉”’%‰,.;:?!)]}…·"
_OPEN = "（《「『【〔〈“‘([{"
# a number, date or time, with its sign, decimals, separators and an attached unit: 2027-03-31, 238.50 元,
# 2027年3月31日, 10:30, 100%, 15 年, F20270331-0001; also Latin words and codes (ID tails like ****0527)
_DIGITS = r"[0-9０-９](?:[0-9０-９.,:：/\-]*[0-9０-９%])?"
# digit groups a space apart are one number (a phone number "138 0000 0000")
_NUM = rf"[+\-−]?{_DIGITS}(?:[ \u00a0]{_DIGITS})*"
_DATE_CN = r"[0-9０-９]{2,4}年[0-9０-９]{1,2}月(?:[0-9０-９]{1,2}日)?|[0-9０-９]{1,2}月[0-9０-９]{1,2}日"
_UNIT = r"(?:[ \u00a0]?(?:元|角|分|年|个月|月|日|天|岁|次|秒|分钟|小时|位|项|%|‰))?"
_LATIN = r"[A-Za-z*＊][A-Za-z0-9*＊_.\-/@]*"
RUN = re.compile(rf"(?:{_DATE_CN}|{_NUM}{_UNIT}|{_LATIN}[0-9]*)(?:[\-/.][A-Za-z0-9*]+)*")
_BRACKETS = {"（": "）", "(": ")", "《": "》", "【": "】", "「": "」", "“": "”", "[": "]"}
BRACKET = re.compile("|".join(
    rf"{re.escape(o)}[^{re.escape(o + c)}\n]{{0,{MAX_BRACKET}}}{re.escape(c)}" for o, c in _BRACKETS.items()))


def protected_runs(text: str) -> list[str]:
    """The runs of `text` that must stay on one line: bracketed phrases and numbers, dates, Latin words."""
    out = [m.group(0) for m in BRACKET.finditer(text)]
    covered = [(m.start(), m.end()) for m in BRACKET.finditer(text)]
    for m in RUN.finditer(text):
        if len(m.group(0)) > 1 and not any(a <= m.start() and m.end() <= b for a, b in covered):
            out.append(m.group(0).strip())
    return out


def units(paragraph: str) -> list[str]:
    """The pieces a line may break between: one CJK character, a protected run, or a space (a break that
    disappears at the end of a line). Closing punctuation sticks to the piece before it, an opening bracket to
    the piece after it."""
    spans: list[tuple[int, int]] = []
    taken = [False] * len(paragraph)
    for rx in (BRACKET, RUN):
        for m in rx.finditer(paragraph):
            a, b = m.start(), m.end()
            if b - a > 1 and not any(taken[a:b]):
                spans.append((a, b))
                for i in range(a, b):
                    taken[i] = True
    starts = {a: b for a, b in spans}
    out: list[str] = []
    i = 0
    while i < len(paragraph):
        end = starts.get(i, i + 1)
        out.append(paragraph[i:end])
        i = end
    # glue: closing punctuation to the piece before, opening brackets to the piece after
    glued: list[str] = []
    for u in out:
        if glued and u[0] in _CLOSE and glued[-1] != " ":
            glued[-1] += u
        elif glued and glued[-1] and glued[-1][-1] in _OPEN and glued[-1][-1] not in _CLOSE:
            glued[-1] += u
        else:
            glued.append(u)
    return glued


def break_lines(text: str, width: float, measure: Callable[[str], float]) -> str:
    """`text` with a newline wherever a line must break to fit `width` (measured by `measure`, which gives a
    string's width in the same unit). Existing newlines stay. A piece wider than a whole line is cut by
    character (nothing else would fit), spaces inside a protected run become no-break spaces."""
    if width <= 0 or not text:
        return text
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for u in units(para):
            if u != " " and " " in u:
                u = u.replace(" ", NBSP)  # a space inside a run must not be a break for Kivy either
            if u == " ":
                if line:
                    line += u
                continue
            if not line or measure(line + u) <= width:
                line += u
                if measure(line) > width and len(u) > 1:  # one piece wider than a line: cut it by character
                    line = _cut(line, width, measure, lines)
                continue
            lines.append(line.rstrip(" "))
            line = u
            if measure(line) > width and len(u) > 1:
                line = _cut(line, width, measure, lines)
        lines.append(line.rstrip(" "))
    return "\n".join(lines)


def _cut(line: str, width: float, measure: Callable[[str], float], lines: list[str]) -> str:
    while len(line) > 1 and measure(line) > width:
        n = len(line)
        while n > 1 and measure(line[:n]) > width:
            n -= 1
        while n > 1 and line[n] in _CLOSE:  # closing punctuation never starts a line
            n -= 1
        lines.append(line[:n])
        line = line[n:]
    return line


def split_runs(lines: list[str], text: str) -> list[str]:
    """The protected runs of `text` that rendered `lines` split across two lines (for the director)."""
    joined = [ln.replace(NBSP, " ").replace(WORD_JOINER, "") for ln in lines]
    out = []
    for run in protected_runs(text.replace(NBSP, " ")):
        r = run.replace(NBSP, " ")
        if not any(r in ln for ln in joined) and any(r[:1] in ln for ln in joined):
            out.append(run)
    return out


# -- Kivy
_installed = False


def install() -> None:
    """Make every plain Label lay its text out with break_lines (call once, before labels are made)."""
    global _installed
    if _installed:
        return
    import kivy.core.text as core
    import kivy.uix.label as uix

    base = core.Label

    class BreakingLabel(base):  # type: ignore[misc,valid-type]  # the provider's class, known only at run time
        def render(self, real=False):
            if real:
                return super().render(real)
            uw = self._text_size[0]
            original = self._text
            if uw is None or not original or self.options.get("shorten"):
                return super().render(real)
            pad = self.options.get("padding") or (0, 0, 0, 0)
            width = uw - pad[0] - pad[2] - 1  # a pixel of slack: Kivy measures words one by one
            extents = self.get_cached_extents()
            self._text = break_lines(original, width, lambda s: extents(s)[0])
            try:
                return super().render(real)
            finally:
                self._text = original

    core.Label = BreakingLabel
    uix.CoreLabel = BreakingLabel  # kivy.uix.label chose its core label class at import
    _installed = True


def rendered_lines(widget) -> list[str]:
    """The lines a Label drew (empty when it has not drawn)."""
    label = getattr(widget, "_label", None)
    out = []
    for line in getattr(label, "_cached_lines", None) or ():
        out.append("".join(getattr(w, "text", "") for w in getattr(line, "words", ())))
    return out
