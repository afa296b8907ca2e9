"""The ASGI application: JSON API under ``/api``, static pages for people, nothing that writes."""

from __future__ import annotations

import ipaddress
import json
import math
from importlib import resources
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from catalog.errors import (
    AmbiguousReferenceError,
    CatalogError,
    InvalidInputError,
    NotFoundError,
    StoreUnavailableError,
)
from catalog.queries import CircuitDrawing, Comparison, Reuse, compare, drawing, find, reuse
from catalog.store import Catalog
from catalog.store.records import CircuitSummary, FindHit

#: HTTP status for each library error; the first matching class wins.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (NotFoundError, 404),
    (AmbiguousReferenceError, 409),
    (InvalidInputError, 400),
    (StoreUnavailableError, 503),
    (CatalogError, 400),
)

#: URL path -> (title, the page's script in web/static): every page is web/static/page.html
#: with its own script, which builds the page from the JSON API.
_PAGES = {"/": ("Circuits", "index.js"), "/circuit/{ref}": ("Circuit", "circuit.js"),
          "/compare": ("Compare", "compare.js"), "/reuse": ("Reuse", "reuse.js"), "/find": ("Find", "find.js")}


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: send them as null, so one odd stored value never breaks a page.

    >>> _finite({"a": [1.0, float("inf")], "b": float("nan")})
    {'a': [1.0, None], 'b': None}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class SafeJSONResponse(JSONResponse):
    """Strict JSON (``allow_nan=False`` after mapping non-finite floats to null)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(_finite(content), allow_nan=False, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")


def create_app(db: str | None = None) -> FastAPI:
    """The web application over the catalog at `db` (a path or URL; None: $CATALOG_DB, then the
    default). The catalog is opened once, here, so a missing or out-of-date database fails at
    start-up with the library's message rather than on the first request."""
    cat = Catalog.open(db, create=False)
    app = FastAPI(title="circuit-catalog", summary="Read-only view of a circuit catalog.",
                  default_response_class=SafeJSONResponse, docs_url=None, redoc_url=None)
    static = resources.files("web") / "static"

    @app.exception_handler(CatalogError)
    async def _catalog_error(request: Request, exc: CatalogError) -> SafeJSONResponse:
        status = next(code for cls, code in _STATUS if isinstance(exc, cls))
        return SafeJSONResponse({"error": str(exc)}, status_code=status)

    @app.get("/api/circuits", response_model=list[CircuitSummary])
    def circuits(model: str | None = None, task: str | None = None, method: str | None = None,
                 tag: str | None = None, source: str | None = None) -> Any:
        """Circuits in the catalog, optionally filtered (as `catalog list --json`)."""
        return cat.circuits(model=model, task=task, method=method, tag=tag, source=source)

    @app.get("/api/circuits/{ref}", response_model=CircuitDrawing)
    def circuit(ref: str, model: str | None = None, compare: str | None = Query(None)) -> Any:
        """One circuit with its provenance, metrics and drawing (as `catalog show --json`, plus
        node positions); with `compare`, shared and exclusive components are marked."""
        return drawing(cat, ref, model=model, compare=compare)

    @app.get("/api/compare", response_model=Comparison)
    def compare_(a: str, b: str, model: str | None = None,
                 matched_k: int | None = Query(None, ge=1)) -> Any:
        """Overlap of two circuits (as `catalog compare --json`)."""
        return compare(cat, a, b, model=model, matched_k=matched_k)

    @app.get("/api/reuse", response_model=Reuse)
    def reuse_(model: str | None = None) -> Any:
        """Component reuse across tasks and the task x task matrix (as `catalog reuse --json`)."""
        return reuse(cat, model=model)

    @app.get("/api/find", response_model=list[FindHit])
    def find_(component: str, model: str | None = None) -> Any:
        """Every circuit containing a component (as `catalog find --json`)."""
        return find(cat, component, model=model)

    shell = (static / "page.html").read_text(encoding="utf-8")

    def page(title: str, script: str) -> Any:
        html = shell.replace("{title}", title).replace("{script}", script)

        async def handler() -> HTMLResponse:
            return HTMLResponse(html)

        return handler

    for path, (title, script) in _PAGES.items():
        app.add_api_route(path, page(title, script), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(db: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the web view until Ctrl-C (uvicorn, one process)."""
    import uvicorn

    uvicorn.run(create_app(db), host=host, port=port, log_level="warning")
