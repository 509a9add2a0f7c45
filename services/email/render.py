"""The order confirmation, rendered from Jinja2 templates: HTML (autoescaped) and plain text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),  # the .txt body is plain text: never escaped
    undefined=StrictUndefined,  # a field the template needs and the order lacks is an error
    keep_trailing_newline=True,
    auto_reload=False,  # templates ship with the code: no stat of their files per e-mail
)


def money(cents: int, currency: str) -> str:
    """4599, "EUR" -> "45.99 EUR" (integer arithmetic: no float rounding)."""
    return f"{cents // 100:,}.{cents % 100:02d} {currency}"


_env.filters["money"] = money


def subject(order: dict[str, Any]) -> str:
    return f"Your Mesh Boutique order {order['id']} is confirmed"


def confirmation(order: dict[str, Any]) -> tuple[str, str]:
    """``(text, html)`` of the confirmation of ``order``."""
    context = {"order": order, "subject": subject(order)}
    text = _env.get_template("confirmation.txt").render(context)
    html = _env.get_template("confirmation.html").render(context)
    return text, html
