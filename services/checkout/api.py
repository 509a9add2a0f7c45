"""HTTP handler for checkout: read the caller, the key and the card, run the saga, answer."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, field_validator

from services import kit
from services.kit.jsonio import json_response

from . import saga

_SEPARATORS = re.compile(r"[ -]")
_DIGITS = re.compile(r"[0-9]{12,19}")
_CVC = re.compile(r"[0-9]{3,4}")


class Card(kit.Body):
    number: Annotated[str, Field(max_length=64)]
    exp_month: Annotated[int, Field(ge=1, le=12)]
    exp_year: Annotated[int, Field(ge=2000, le=2100)]
    cvc: str

    @field_validator("number")
    @classmethod
    def _number(cls, number: str) -> str:
        digits = _SEPARATORS.sub("", number)
        if not _DIGITS.fullmatch(digits):
            raise ValueError("a card number is 12 to 19 digits (spaces and dashes allowed)")
        return digits

    @field_validator("cvc")
    @classmethod
    def _cvc(cls, cvc: str) -> str:
        if not _CVC.fullmatch(cvc):
            raise ValueError("a card security code is 3 or 4 digits")
        return cvc


class Address(kit.Body):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    street: Annotated[str, Field(min_length=1, max_length=200)]
    city: Annotated[str, Field(min_length=1, max_length=100)]
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class CheckoutRequest(kit.Body):
    card: Card
    currency: Literal["USD", "EUR", "GBP", "CAD", "CHF"] = "USD"  # the currency service's table
    address: Address | None = None


async def post_checkout(request: web.Request) -> web.Response:
    user = kit.user_id(request)
    key = kit.idempotency_key(request)
    body = await kit.read_json(request, CheckoutRequest)
    run = saga.Saga(
        kit.peers(request),
        user,
        saga.saga_id(user, key),
        body.card.model_dump(),
        body.currency,
        body.address.model_dump() if body.address else None,
    )
    order = await saga.checkout(run)
    return json_response(order, status=201)


routes = [web.post("/checkout", post_checkout)]
