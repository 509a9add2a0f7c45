"""HTTP handlers for currency: the table, and conversions of many amounts in one call."""

from __future__ import annotations

from aiohttp import web

from services import kit

from .rates import Rates

RATES: web.AppKey[Rates] = web.AppKey("rates", Rates)
MAX_AMOUNTS = 200
MAX_CENTS = 10**12


async def list_currencies(request: web.Request) -> web.Response:
    return web.json_response(request.app[RATES].public())


async def convert(request: web.Request) -> web.Response:
    """``GET /convert?from=USD&to=EUR&amounts=1250,999``: each amount converted, in order."""
    rates = request.app[RATES]
    source = _currency(request, "from", rates)
    target = _currency(request, "to", rates)
    amounts = _amounts(request.query.get("amounts", ""))
    converted = [rates.convert(cents, source, target) for cents in amounts]
    rate = rates.rate(source, target)
    return web.json_response(
        {
            "from": source,
            "to": target,
            "rate": f"{rate.numerator}/{rate.denominator}",
            "amounts": converted,
        }
    )


def _currency(request: web.Request, name: str, rates: Rates) -> str:
    code = request.query.get(name, "")
    if code not in rates.currencies:
        known = ", ".join(rates.currencies)
        raise kit.Problem(
            400,
            f"Query parameter {name!r} must be one of {known} (got {code[:8]!r})",
            code="unknown_currency",
        )
    return code


def _amounts(raw: str) -> list[int]:
    parts = raw.split(",") if raw else []
    if not 1 <= len(parts) <= MAX_AMOUNTS or not all(p.isdigit() and len(p) <= 13 for p in parts):
        raise kit.Problem(
            400,
            f"Query parameter 'amounts' must be 1 to {MAX_AMOUNTS} whole numbers of cents, "
            "comma-separated (e.g. amounts=1250,999)",
            code="bad_query",
        )
    amounts = [int(p) for p in parts]
    if any(a > MAX_CENTS for a in amounts):
        raise kit.Problem(400, f"An amount is above {MAX_CENTS} cents", code="bad_query")
    return amounts


routes = [
    web.get("/currencies", list_currencies),
    web.get("/convert", convert),
]
