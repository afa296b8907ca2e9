"""Circuit file formats: read peer tools' files and our own, write GraphML, JSON and EAP-IG.

    >>> from catalog.formats import FORMATS
    >>> sorted(FORMATS)
    ['catalog-json', 'circuit-tracer', 'eap-ig', 'graphml']

`read_circuits` detects the format from the content (``--format`` forces it), gunzips ``.gz``
transparently, refuses files over ``$CATALOG_MAX_IMPORT_MB`` (default 512) and never unpickles.
`import_file` reads and validates everything before it adds anything to a catalog.
"""

from catalog.formats.files import DEFAULT_MAX_IMPORT_MB, KNOWN_TASK_SLUGS, MAX_IMPORT_MB_ENV
from catalog.formats.registry import (
    ALIASES,
    FORMATS,
    FormatSpec,
    get_format,
    import_file,
    read_circuits,
    write_circuit,
)

__all__ = [
    "ALIASES",
    "DEFAULT_MAX_IMPORT_MB",
    "FORMATS",
    "KNOWN_TASK_SLUGS",
    "MAX_IMPORT_MB_ENV",
    "FormatSpec",
    "get_format",
    "import_file",
    "read_circuits",
    "write_circuit",
]
