"""The web console's files: one HTML page, its script and its style sheet, open to anyone.

The files hold no data (everything the page shows comes from the authenticated API routes,
with the token the operator types in), so serving them needs no token. They ship inside the
package (`api/console`): no CDN, no build step. The page may run only its own script
(Content-Security-Policy) and may not be framed (clickjacking on the kill switch).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

router = APIRouter(tags=["console"], include_in_schema=False)

ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
PAGE = "index.html"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("api").joinpath("console", name).read_bytes()


@router.get("/console")
async def page() -> Response:
    return Response(_read(PAGE), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/console/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:  # only the listed files: no path is ever built from the request
        raise HTTPException(404, "no such console file")
    return Response(_read(name), media_type=media_type, headers=SECURITY_HEADERS)


__all__ = ["ASSETS", "SECURITY_HEADERS", "router"]
