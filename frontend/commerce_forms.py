"""The checkout form's shipping address: read, checked, and given back to re-fill the form."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import forms

# The countries the form offers (shipping zones: US, North America, Europe, the world).
COUNTRIES = {
    "US": "United States",
    "CA": "Canada",
    "MX": "Mexico",
    "GB": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "CH": "Switzerland",
    "JP": "Japan",
    "AU": "Australia",
}
FIELDS = {"name": 100, "street": 200, "city": 100, "postal_code": 20}
LABELS = {
    "name": "your name",
    "street": "the street",
    "city": "the city",
    "postal_code": "the postcode",
}


def address(form: Any) -> dict[str, str] | str | None:
    """The address from the form, None when it is left empty (collected in store, no shipping),
    or what is missing in plain words."""
    found = {name: forms.field(form, name, limit).strip() for name, limit in FIELDS.items()}
    if not any(found.values()):
        return None
    missing = [LABELS[name] for name, value in found.items() if not value]
    if missing:
        return "Enter " + ", ".join(missing) + " to ship your order to."
    country = forms.field(form, "country", 2)
    if country not in COUNTRIES:
        return "Choose the country to ship to."
    return {**found, "country": country}


async def address_fields(request: web.Request) -> dict[str, Any]:
    """What the form shows: the values sent (when it is shown again) and the countries."""
    form = await request.post() if request.method == "POST" else {}
    values = {name: forms.field(form, name, limit) for name, limit in FIELDS.items()}
    return {**values, "country": forms.field(form, "country", 2) or "US", "countries": COUNTRIES}
