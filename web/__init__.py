"""`catalog serve`: a local, read-only web view over the catalog.

A thin interface like `cli/`: every request is one call into the library, and every JSON
response is a library pydantic model (the same one ``--json`` prints). The pages are static
HTML and JavaScript served from ``web/static`` (no CDN, no third-party scripts); they fetch the
JSON API and build the page with DOM text nodes, so no string from a file is ever parsed as HTML.
"""

from web.app import create_app, serve

__all__ = ["create_app", "serve"]
