"""Values composed into spoken Mandarin: money, dates, counts and filing numbers (pure, no I/O).

A text-to-speech engine reads "238.50元" digit by digit or in English; a person at a bank or post office counter
says 二百三十八元五角. These functions produce the words a counter clerk would say, for the voice prompts only
(the screen keeps showing figures).

二 versus 两: every digit 2 is read 二, in money and plain numbers alike (二百, 二千, 二万, 二角). 二 is correct in
every position and is how amounts are read out formally (it is the plain form of the banker's 贰); 两 is only
idiomatic before some units (两千, 两万) and the choice varies by region (两百/二百), so one rule that is never
wrong beats an idiom that is sometimes wrong. The one exception is a count before a measure word, where 二 is a
grammar error (两次, not 二次, which means "secondary"): `spoken_number(2, counting=True)` gives 两.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from cn2an import an2cn

DIGITS = "〇一二三四五六七八九"  # digit-by-digit reading (years, filing numbers); 1 is 一, never 幺
_DECIMALS = "零一二三四五六七八九"  # after 点 a zero is 零 (一点零五), as it is said
_FEN = Decimal("0.01")
_MAX_DIGITS = 16  # cn2an reads up to 16 integer digits (九千万亿…); more is not an amount anyone says


def spoken_number(n: int, *, counting: bool = False) -> str:
    """An integer as it is said: 10 -> 十, 110 -> 一百一十, 1005 -> 一千零五, -3 -> 负三.

    `counting=True` is for a count before a measure word (还可以再试两次, 累计缴费两年): a lone 2 is then 两.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"spoken_number takes an int, not {type(n).__name__}")
    if len(str(abs(n))) > _MAX_DIGITS:
        raise ValueError(f"number too large to read aloud ({len(str(abs(n)))} digits)")
    if counting and n == 2:
        return "两"
    # cn2an's "low" mode is the everyday reading: no leading 一 before 十 (十, 十五, 十万), 零 for inner gaps.
    return ("负" if n < 0 else "") + an2cn(abs(n), "low")


def spoken_figure(value: int | float | Decimal | str) -> str:
    """A bound or measure that may have decimals: 300000 -> 三十万, 1.5 -> 一点五, 10.0 -> 十, -0.25 -> 负零点二五.

    A whole value is read as spoken_number; the decimals are read digit by digit after 点, as everyone says them.
    """
    if isinstance(value, bool):
        raise TypeError("spoken_figure takes a number, not a bool")
    try:
        d = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite number: {d}")
    if d == d.to_integral_value():
        return spoken_number(int(d))
    whole, _, frac = format(abs(d), "f").partition(".")
    return ("负" if d < 0 else "") + spoken_number(int(whole)) + "点" + "".join(_DECIMALS[int(c)] for c in frac.rstrip("0"))


def spoken_amount(amount: Decimal | int | str) -> str:
    """Money in yuan as a counter clerk reads it: 238.50 -> 二百三十八元五角, 0.05 -> 五分, 12.00 -> 十二元.

    More than two decimals are rounded half-up to the fen. NaN, infinity and text that is not a number raise
    ValueError; so does a float (binary floats are not money: pass a Decimal or a string).
    """
    if isinstance(amount, bool | float):
        raise ValueError(f"amount must be a Decimal, int or str, not {type(amount).__name__}")
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    fen_total = int((abs(value).quantize(_FEN, rounding=ROUND_HALF_UP) * 100).to_integral_value())
    if fen_total == 0:
        return "零元"  # also -0.004: no 负 for an amount that rounds to nothing
    yuan, rest = divmod(fen_total, 100)
    jiao, fen = divmod(rest, 10)
    parts = ["负"] if value < 0 else []
    if yuan:
        parts.append(spoken_number(yuan) + "元")
    if jiao:
        parts.append(DIGITS[jiao] + "角")
    if fen:
        if yuan and not jiao:
            parts.append("零")  # 十万元零一分: the missing 角 is said, as on a bank slip
        parts.append(DIGITS[fen] + "分")
    return "".join(parts)


def spoken_date(d: date) -> str:
    """A calendar date: 2027-03-31 -> 二〇二七年三月三十一日 (year digit by digit, month and day as numbers)."""
    if not isinstance(d, date):
        raise TypeError(f"spoken_date takes a date, not {type(d).__name__}")
    year = "".join(DIGITS[int(c)] for c in f"{d.year:04d}")
    return f"{year}年{spoken_number(d.month)}月{spoken_number(d.day)}日"


def spoken_digits(code: str) -> str:
    """A filing or receipt number read symbol by symbol: R20261201-3F2A -> "R 二 〇 二 六 一 二 〇 一，三 F 二 A".

    Digits become 〇一二…九 (1 is 一, not the telephone 幺); letters stay as they are (the voice spells them);
    separators (-, /, spaces, dots) become one pause. Symbols are space-separated so that runs of letters are
    spelled, not read as a pinyin syllable ("FA" would otherwise be said fā).
    """
    groups: list[list[str]] = [[]]
    for ch in code:
        if ch.isdecimal():
            groups[-1].append(DIGITS[unicodedata.decimal(ch)])
        elif ch.isalpha():
            groups[-1].append(ch)
        elif groups[-1]:
            groups.append([])  # a run of separators is one pause
    return "，".join(" ".join(g) for g in groups if g)


def grouped_phone(phone: str) -> str:
    """A mainland mobile number as 3-4-4 (138 0000 1111: how it is written and read back); others as given."""
    p = phone.strip()
    if len(p) == 11 and p.isdigit() and p.startswith("1"):
        return f"{p[:3]} {p[3:7]} {p[7:]}"
    return p
