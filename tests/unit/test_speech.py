"""Spoken Mandarin for money, dates, counts and filing numbers: the edge cases and a parse-back round trip."""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import cn2an
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.speech import grouped_phone, spoken_amount, spoken_date, spoken_digits, spoken_number

# -- an independent reader of what the module says (so the round trip does not trust the writer) ----------

_DIGIT = {c: i for i, c in enumerate("零一二三四五六七八九")}
_SMALL = {"十": 10, "百": 100, "千": 1000}


def parse_int(text: str) -> int:
    neg = text.startswith("负")
    body = text[1:] if neg else text
    assert body, text
    yi_part = wan_part = cur = 0  # already times 10^8 / times 10^4 / below 10^4
    digit: int | None = None
    for ch in body:
        if ch in _DIGIT:
            digit = _DIGIT[ch]
        elif ch in _SMALL:
            cur += (1 if digit is None else digit) * _SMALL[ch]
            digit = None
        elif ch == "万":
            wan_part = (cur + (digit or 0)) * 10**4
            cur, digit = 0, None
        elif ch == "亿":
            yi_part = (yi_part + wan_part + cur + (digit or 0)) * 10**8
            wan_part = cur = 0
            digit = None
        else:
            raise AssertionError(f"unexpected {ch!r} in {text!r}")
    n = yi_part + wan_part + cur + (digit or 0)
    return -n if neg else n


def parse_amount(text: str) -> Decimal:
    neg = text.startswith("负")
    body = text[1:] if neg else text
    if body == "零元":
        assert not neg
        return Decimal("0.00")
    yuan = jiao = fen = 0
    if "元" in body:
        head, body = body.split("元")
        yuan = parse_int(head)
        assert yuan > 0
    if body.startswith("零"):  # only where the 角 is missing between yuan and fen
        assert yuan and "角" not in body and body.endswith("分"), text
        body = body[1:]
    if "角" in body:
        head, body = body.split("角")
        assert len(head) == 1 and head != "零", text
        jiao = _DIGIT[head]
    if "分" in body:
        head, body = body.split("分")
        assert len(head) == 1 and head != "零", text
        fen = _DIGIT[head]
    assert body == "", text
    value = Decimal(yuan) + Decimal(jiao) / 10 + Decimal(fen) / 100
    return (-value if neg else value).quantize(Decimal("0.01"))


def assert_canonical(text: str) -> None:
    """What a careful speaker says: no 一十 at the start, no doubled or trailing 零, 二 never 两."""
    body = text.removeprefix("负")
    assert not body.startswith("一十"), text
    assert "零零" not in body, text
    assert body == "零" or not body.endswith("零"), text
    assert "两" not in body, text
    for i, ch in enumerate(body):
        if ch == "十" and i > 0:
            assert body[i - 1] in _DIGIT, text  # 一百一十, 十万零一十: only the leading 十 drops its 一


# -- money -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "spoken"),
    [
        ("238.50", "二百三十八元五角"),
        ("1005", "一千零五元"),
        ("0.05", "五分"),
        ("100000.01", "十万元零一分"),
        ("12.00", "十二元"),
        ("10", "十元"),
        ("110", "一百一十元"),
        ("20005.30", "二万零五元三角"),
        ("100000000", "一亿元"),
        ("100010000", "一亿零一万元"),
        # zeros inside
        ("101", "一百零一元"),
        ("1010", "一千零一十元"),
        ("100100", "十万零一百元"),
        ("1001000100", "十亿零一百万零一百元"),
        ("105000", "十万五千元"),
        # whole yuan, only jiao, only fen, both
        ("1", "一元"),
        ("0.5", "五角"),
        ("0.50", "五角"),
        ("0.55", "五角五分"),
        ("0.01", "一分"),
        ("10.05", "十元零五分"),
        ("10.50", "十元五角"),
        ("3.07", "三元零七分"),
        ("3.70", "三元七角"),
        # 十 at the start of a section, 万 and 亿
        ("15", "十五元"),
        ("100000", "十万元"),
        ("150000", "十五万元"),
        ("10000", "一万元"),
        ("1000000000", "十亿元"),
        ("110000000", "一亿一千万元"),
        # 二 throughout, never 两
        ("2", "二元"),
        ("200", "二百元"),
        ("2000", "二千元"),
        ("22222.22", "二万二千二百二十二元二角二分"),
        ("0.22", "二角二分"),
        # zero and negatives
        ("0", "零元"),
        ("0.00", "零元"),
        ("-3.5", "负三元五角"),
        ("-0.05", "负五分"),
        ("-238.50", "负二百三十八元五角"),
    ],
)
def test_spoken_amount(amount, spoken):
    assert spoken_amount(Decimal(amount)) == spoken
    assert spoken_amount(amount) == spoken  # strings are read the same


@pytest.mark.parametrize(
    ("amount", "spoken"),
    [
        ("0.005", "一分"),  # half-up, not banker's rounding
        ("0.015", "二分"),
        ("0.025", "三分"),
        ("0.004", "零元"),
        ("-0.004", "零元"),  # rounds to nothing: no 负
        ("-0.005", "负一分"),
        ("9.995", "十元"),
        ("99999.999", "十万元"),
        ("1.2345", "一元二角三分"),
    ],
)
def test_more_than_two_decimals_round_half_up_to_fen(amount, spoken):
    assert spoken_amount(Decimal(amount)) == spoken


def test_ints_are_whole_yuan():
    assert spoken_amount(1005) == "一千零五元"


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity"),
                                 "nan", "inf", "abc", "", "1,000", 1.5, True, Decimal("1E+20")])
def test_unreadable_amounts_raise_value_error(bad):
    with pytest.raises(ValueError):
        spoken_amount(bad)


@given(st.decimals(min_value=Decimal("-9999999999999999.99"), max_value=Decimal("9999999999999999.99"),
                   places=2, allow_nan=False, allow_infinity=False))
def test_amount_round_trip(amount):
    text = spoken_amount(amount)
    assert parse_amount(text) == amount  # -0.00 == 0.00, and 零元 has no 负
    if "元" in text and text != "零元":
        assert_canonical(text.split("元")[0])


@given(st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=6,
                   allow_nan=False, allow_infinity=False))
def test_amount_rounds_like_decimal_half_up(amount):
    expected = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert parse_amount(spoken_amount(amount)) == (expected if expected else Decimal("0.00"))


# -- plain numbers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "spoken"),
    [(0, "零"), (1, "一"), (2, "二"), (10, "十"), (11, "十一"), (20, "二十"), (99, "九十九"), (100, "一百"),
     (110, "一百一十"), (119, "一百一十九"), (1005, "一千零五"), (2010, "二千零一十"), (10000, "一万"),
     (100000, "十万"), (100010, "十万零一十"), (100000001, "一亿零一"), (10**12, "一万亿"), (-3, "负三"),
     (-10, "负十"), (9_999_999_999_999_999, "九千九百九十九万九千九百九十九亿九千九百九十九万九千九百九十九")],
)
def test_spoken_number(n, spoken):
    assert spoken_number(n) == spoken


@pytest.mark.parametrize(("n", "spoken"), [(2, "两"), (1, "一"), (3, "三"), (12, "十二"), (20, "二十"), (22, "二十二")])
def test_counting_says_liang_only_for_a_lone_two(n, spoken):
    assert spoken_number(n, counting=True) == spoken  # 还可以再试两次, but 十二次


def test_spoken_number_rejects_non_ints_and_huge_values():
    with pytest.raises(TypeError):
        spoken_number(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        spoken_number(True)
    with pytest.raises(ValueError):
        spoken_number(10**16)


@given(st.integers(min_value=-(10**16 - 1), max_value=10**16 - 1))
def test_number_round_trip_two_readers(n):
    text = spoken_number(n)
    assert_canonical(text)
    assert parse_int(text) == n
    assert cn2an.cn2an(text, "strict") == n  # a second, independent reader


@given(st.integers(min_value=0, max_value=10**16 - 1))
def test_number_agrees_with_cn2an_low_reading_of_an_arabic_string(n):
    assert spoken_number(n) == cn2an.an2cn(str(n), "low")


# -- dates ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "spoken"),
    [
        (date(2027, 3, 31), "二〇二七年三月三十一日"),
        (date(2026, 10, 10), "二〇二六年十月十日"),
        (date(2026, 1, 20), "二〇二六年一月二十日"),
        (date(2000, 12, 1), "二〇〇〇年十二月一日"),
        (date(2026, 11, 11), "二〇二六年十一月十一日"),
        (date(1958, 2, 28), "一九五八年二月二十八日"),
    ],
)
def test_spoken_date(d, spoken):
    assert spoken_date(d) == spoken


@given(st.dates())
def test_date_round_trip(d):
    m = re.fullmatch(r"([〇一二三四五六七八九]{4})年(.+)月(.+)日", spoken_date(d))
    assert m, spoken_date(d)
    year = int("".join(str("〇一二三四五六七八九".index(c)) for c in m[1]))
    assert date(year, parse_int(m[2]), parse_int(m[3])) == d
    assert_canonical(m[2])
    assert_canonical(m[3])


def test_spoken_date_rejects_strings():
    with pytest.raises(TypeError):
        spoken_date("2027-03-31")  # type: ignore[arg-type]


# -- filing and receipt numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "spoken"),
    [
        ("R20261201-3F2A", "R 二 〇 二 六 一 二 〇 一，三 F 二 A"),
        ("110", "一 一 〇"),  # 1 is 一, never 幺
        ("0", "〇"),
        ("ab-12", "a b，一 二"),  # letters as they are
        ("A--1//2 3", "A，一，二，三"),  # a run of separators is one pause
        ("-12-", "一 二"),
        ("", ""),
        ("２０", "二 〇"),  # full-width digits from a pasted code
    ],
)
def test_spoken_digits(code, spoken):
    assert spoken_digits(code) == spoken


@given(st.text(alphabet="0123456789ABCDEFabcdef-/ ", max_size=30))
def test_digits_round_trip(code):
    text = spoken_digits(code)
    assert "幺" not in text and "零" not in text
    back = "".join(str("〇一二三四五六七八九".index(c)) if c in "〇一二三四五六七八九" else c
                   for c in text.replace("，", "").replace(" ", ""))
    assert back == re.sub(r"[-/ ]", "", code)


@pytest.mark.parametrize(("phone", "shown"), [
    ("13800001111", "138 0000 1111"),
    (" 13900002222 ", "139 0000 2222"),
    ("0531-12345678", "0531-12345678"),  # a landline keeps its own form
    ("23800001111", "23800001111"),  # not a mobile number
    ("1380000111", "1380000111"),  # ten digits: shown as given
    ("", ""),
])
def test_grouped_phone(phone, shown):
    assert grouped_phone(phone) == shown


# -- spoken_figure: bounds and measures that may have decimals ---------------------------------------------------


@pytest.mark.parametrize(("value", "said"), [
    (300000, "三十万"), (10000, "一万"), (1.5, "一点五"), (10.0, "十"), ("-0.25", "负零点二五"), (0, "零"),
    (Decimal("1.05"), "一点零五"), (Decimal("2.50"), "二点五"), ("1e2", "一百"),
])
def test_spoken_figure(value, said):
    from kiosk.speech import spoken_figure

    assert spoken_figure(value) == said


@pytest.mark.parametrize("bad", [True, "abc", float("nan"), "inf", 10**20])
def test_spoken_figure_refuses_what_is_not_a_readable_number(bad):
    from kiosk.speech import spoken_figure

    with pytest.raises((TypeError, ValueError)):
        spoken_figure(bad)
