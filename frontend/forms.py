"""What the shop's forms accept, checked before anything is sent, in the shopper's words."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PATH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
EXPIRY = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$")
CVC = re.compile(r"^[0-9]{3,4}$")


def field(form: Mapping[str, Any], name: str, limit: int = 256) -> str:
    """A text field of a posted form, trimmed; '' when absent, not text, or too long."""
    value = form.get(name)
    if not isinstance(value, str) or len(value) > limit:
        return ""
    return value.strip()


def secret(form: Mapping[str, Any], name: str, limit: int = 1024) -> str:
    """A password field: exactly as typed (no trimming); '' when absent or too long."""
    value = form.get(name)
    return value if isinstance(value, str) and len(value) <= limit else ""


def quantity(raw: str, low: int = 1, high: int = 99) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if low <= value <= high else None


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirects)."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    if any(c.isspace() or not c.isprintable() for c in raw):
        return "/"
    return raw


def email_problem(email: str) -> str | None:
    if not EMAIL.match(email) or len(email) > 254:
        return "Enter an e-mail address such as ada@example.com."
    return None


def password_problem(password: str) -> str | None:
    if not 8 <= len(password) <= 128:
        return "Your password needs 8 to 128 characters."
    return None


@dataclass(frozen=True)
class Card:
    number: str
    exp_month: int
    exp_year: int
    cvc: str

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "cvc": self.cvc,
        }


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card(number: str, expiry: str, cvc: str, now: datetime | None = None) -> Card | str:
    """The card the shopper typed, or what is wrong with it."""
    digits = number.replace(" ", "").replace("-", "")
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        return "That card number is not valid. Please check it and try again."
    match = EXPIRY.match(expiry)
    if not match or not 1 <= int(match.group(1)) <= 12:
        return "Enter the card's expiry date as MM/YY, for example 12/30."
    month, year = int(match.group(1)), int(match.group(2))
    year = year + 2000 if year < 100 else year
    today = now or datetime.now(UTC)
    if (year, month) < (today.year, today.month):
        return "That card has expired. Please use another card."
    if year > 2100:
        return "Enter the card's expiry date as MM/YY, for example 12/30."
    if not CVC.match(cvc):
        return "Enter the 3 or 4 digit security code from the back of your card."
    return Card(digits, month, year, cvc)
