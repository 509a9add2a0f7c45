"""The web shop's app: the kit's factory, the pages, Jinja2 templates and the static files."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from services import kit

from . import inbox, pages, prices, ratings, security, views

HERE = Path(__file__).parent


def create_app(settings: kit.Settings | None = None) -> web.Application:
    app = kit.create_app(
        settings or kit.Settings.from_env("frontend"),
        routes=[
            *views.routes,
            *ratings.routes,
            *inbox.routes,
            web.static("/static", HERE / "static"),
        ],
        contexts=[kit.peers_context],
        openapi=None,
    )
    app[prices.TABLE] = prices.Table()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        filters=pages.FILTERS,
        default_helpers=False,
    )
    # Product images are served by the API: on the same origin behind the ingress, or on the
    # gateway's own port without a mesh (PUBLIC_API_URL).
    api_origin = app[kit.SETTINGS].get("PUBLIC_API_URL", "").rstrip("/")
    aiohttp_jinja2.get_env(app).globals["api_origin"] = api_origin
    # Inside the kit's middlewares, outermost first: cookies and headers for every answer;
    # every failure becomes a page; forms are CSRF-checked before their handler runs.
    app.middlewares.extend([security.cookies_and_headers, pages.error_pages, security.csrf_check])
    return app


if __name__ == "__main__":
    kit.run(create_app())
