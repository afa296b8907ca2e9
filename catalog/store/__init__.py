"""The SQL store: circuits, runs and provenance in SQLite or PostgreSQL, built by Alembic.

>>> from catalog.store import Catalog
>>> cat = Catalog.open(":memory:")
>>> cat.circuits()
[]
"""

from catalog.store.catalog import Catalog
from catalog.store.engine import default_path, resolve_url
from catalog.store.records import (
    Added,
    CircuitSummary,
    ComponentCount,
    FindHit,
    Membership,
    RunRecord,
    SchemaStatus,
    TaskOverlap,
)
from catalog.store.schema import RunStatus

__all__ = [
    "Added",
    "Catalog",
    "CircuitSummary",
    "ComponentCount",
    "FindHit",
    "Membership",
    "RunRecord",
    "RunStatus",
    "SchemaStatus",
    "TaskOverlap",
    "default_path",
    "resolve_url",
]
