"""Card rules, as pure functions: number shape, Luhn, brand, expiry and Stripe's test cards.

Nothing here keeps or returns a full card number: callers get the brand and the last four digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

# Stripe's test cards that decline, and why. Every other valid card succeeds.
DECLINES = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
}

_SEPARATORS = re.compile(r"[ -]")
_DIGITS = re.compile(r"^[0-9]{12,19}$")
_CVC = re.compile(r"^[0-9]{3,4}$")


class CardRejected(ValueError):
    """The card cannot be charged at all; ``code`` is ``invalid_card`` or ``card_expired``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class CardFacts:
    """What may be kept about a card."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    decline_code: str | None


def digits_of(number: str) -> str | None:
    """The card number without spaces and dashes, or ``None`` if it is not 12-19 digits."""
    plain = _SEPARATORS.sub("", number)
    return plain if _DIGITS.match(plain) else None


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every card number carries in its last digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand_of(digits: str) -> str:
    """``visa``, ``mastercard``, ``amex`` or ``other``, from the number's prefix (IIN range)."""
    if digits.startswith(("34", "37")) and len(digits) == 15:
        return "amex"
    if digits.startswith("4"):
        return "visa"
    if 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720:
        return "mastercard"
    return "other"


def is_expired(exp_month: int, exp_year: int, today: date) -> bool:
    """A card is good through the last day of its expiry month."""
    return (exp_year, exp_month) < (today.year, today.month)


def check(number: str, exp_month: int, exp_year: int, cvc: str, today: date) -> CardFacts:
    """The facts to keep about a chargeable card, or :class:`CardRejected`."""
    digits = digits_of(number)
    if digits is None:
        raise CardRejected("invalid_card", "The card number must be 12 to 19 digits")
    if not luhn_valid(digits):
        raise CardRejected("invalid_card", "The card number is not valid (checksum)")
    if not _CVC.match(cvc):
        raise CardRejected("invalid_card", "The card's security code must be 3 or 4 digits")
    if is_expired(exp_month, exp_year, today):
        raise CardRejected("card_expired", f"The card expired at the end of {exp_month}/{exp_year}")
    return CardFacts(
        brand=brand_of(digits),
        last4=digits[-4:],
        exp_month=exp_month,
        exp_year=exp_year,
        decline_code=DECLINES.get(digits),
    )
