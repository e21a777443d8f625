"""Masking of personal data for screens, receipts, CLI output and logs."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """王秀兰 → 王*兰, 李明 → 李*, longer names keep first and last character."""
    chars = list(name.strip())
    if len(chars) <= 1:
        return "*" if chars else ""
    if len(chars) == 2:
        return chars[0] + "*"
    return chars[0] + "*" * (len(chars) - 2) + chars[-1]


def mask_id(number: str) -> str:
    """370102195203140527 → 3701**********0527 (keep 4 + 4, as the receipts show)."""
    n = number.strip()
    if len(n) <= 8:
        return "*" * len(n)
    return n[:4] + "*" * (len(n) - 8) + n[-4:]
