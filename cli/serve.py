"""`catalog serve`: the local, read-only web view (FastAPI, in the optional `web` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from catalog.errors import CatalogError
from cli._common import err_console, state


class WebExtraMissingError(CatalogError):
    """The web view's dependencies are not installed."""


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(
        "--host", metavar="HOST", help="Address to listen on; anything but localhost exposes the "
                                       "catalog to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", metavar="N", min=1, max=65535,
                                      help="Port to listen on.")] = 8000,
) -> None:
    """Serve a read-only web view of the catalog: circuits, drawings, compare, reuse, find (Ctrl-C stops it)."""
    try:
        import web
    except ImportError as e:
        raise WebExtraMissingError(
            f"The web view needs its extra ({e.name} is missing): pip install 'circuit-catalog[web]'."
        ) from None
    if not web.app.is_loopback(host):
        err_console.print(f"warning: listening on {host}: anyone who can reach this machine can read "
                          "the catalog.", markup=False)
    err_console.print(f"serving the catalog at http://{host}:{port}/ (Ctrl-C to stop)", markup=False)
    web.serve(state(ctx).db, host=host, port=port)
