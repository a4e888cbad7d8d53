"""Card numbers in free text: any 13-19 digit run (spaces, dots or dashes between digits, letters
right against it) that passes the Luhn check. Standard library only: the validation suite's
custom expectation and the pandas baseline both use it.
"""

from __future__ import annotations

import re

# Digits with at most one separator between them. In free text letters may touch the run
# (REFUNDCARD4539...X); other digits may not (a longer number is not a card number). In
# machine identifiers (hex tokens) letters and digits mix by design, so there the run must
# stand alone.
_BODY = r"[0-9](?:[ .\-]?[0-9]){12,18}"
_RUN = re.compile(rf"(?<![0-9]){_BODY}(?![0-9])")
_WORD = re.compile(rf"(?<![0-9A-Za-z]){_BODY}(?![0-9A-Za-z])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def contains_card_number(text: object, letters_may_touch: bool = True) -> bool:
    """True when `text` holds a 13-19 digit Luhn-valid number, however it is punctuated."""
    if text is None or not isinstance(text, str):
        return False
    for match in (_RUN if letters_may_touch else _WORD).finditer(text):
        digits = re.sub(r"[^0-9]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False
