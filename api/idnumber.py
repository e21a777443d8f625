"""GB 11643 citizen ID number: the check digit is validated wherever a number is read."""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")  # [0-9], not \d: no other scripts' digits


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def is_valid(number: str) -> bool:
    """Shape, birth date and check digit of an 18-character number ('x' accepted as 'X')."""
    n = number.upper()
    if not _SHAPE.fullmatch(n):  # fullmatch: '$' would let a trailing newline through
        return False
    try:
        date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return False
    return check_digit(n[:17]) == n[17]
