"""Card-number detection used by the PII expectation (include/mlops/common/pii.py)."""

import pytest

from include.mlops.common.pii import contains_card_number, luhn_ok

pytestmark = pytest.mark.unit

PAN = "4539588765432105"  # Luhn-valid test number


@pytest.mark.parametrize(
    "text",
    [
        PAN,
        f"REFUND CARD {PAN}",
        f"REFUNDCARD{PAN}X",  # letters glued to the digits
        "4539.5887.6543.2105",  # dots as separators
        "4539-5887-6543-2105",
        "4539 5887 6543 2105",
        "378282246310005",  # 15-digit (Amex test number)
        "6011111111111117",
    ],
)
def test_card_numbers_are_found(text):
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "4539588765432106",  # fails the Luhn check
        "ORDER 123456789012",  # 12 digits
        "12345678901234567890123",  # 23 digits: an id, not a card number
        "4539  5887 6543 2105",  # two separators in a row break the run
        None,
        12345,
        "",
    ],
)
def test_other_text_is_not_flagged(text):
    assert not contains_card_number(text)


def test_luhn():
    assert luhn_ok(PAN) and not luhn_ok(PAN[:-1] + "6")


def test_identifiers_need_a_standalone_run():
    token = "tok_88506415746495fe748cb170"  # hex: a Luhn-valid 14-digit stretch touching letters
    assert contains_card_number(token)  # as free text it would count
    assert not contains_card_number(token, letters_may_touch=False)
    assert contains_card_number(f"id {PAN} x", letters_may_touch=False)
