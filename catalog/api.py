"""The Python API: everything the `catalog` command line does, as plain function calls.

    import catalog.api as cc

    cat = cc.open_catalog("circuits.db")          # or None: $CATALOG_DB, then the default path
    cc.load_published(cat)
    ids = [a.id for a in cc.import_file(cat, "graph.json", model="gpt2-small", task="ioi")]
    result = cc.compare(cat, "ioi", "greater-than", model="gpt2-small")
    cc.write_circuit(cat.get(ids[0]), "graphml", "ioi.graphml")

Names resolve lazily on first use, so importing this module loads neither SQLAlchemy nor torch;
`discover` and `load_model` pull in torch and TransformerLens only when called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from catalog.errors import CatalogError
from catalog.graph import (
    Annotation,
    AnnotationKind,
    CircuitGraph,
    Edge,
    ModelShape,
    Node,
)
from catalog.naming import parse_component
from catalog.provenance import (
    Ablation,
    Circuit,
    Provenance,
    Selection,
    SelectionRule,
    Source,
)

if TYPE_CHECKING:
    from catalog.analysis.interventions import intervene
    from catalog.analysis.knockout import knockout
    from catalog.analysis.repair import repair
    from catalog.analysis.roles import measure_roles
    from catalog.draw import draw
    from catalog.formats import import_file, read_circuits, write_circuit
    from catalog.jobs import discover
    from catalog.layered import layout
    from catalog.models import load_model
    from catalog.published import load_published, published_circuits
    from catalog.queries import compare, find, reuse
    from catalog.store import Catalog
    from catalog.views import CircuitDetail

# public name -> module it lives in (imported on first access)
_LAZY: dict[str, str] = {
    "Catalog": "catalog.store",
    "import_file": "catalog.formats",
    "read_circuits": "catalog.formats",
    "write_circuit": "catalog.formats",
    "compare": "catalog.queries",
    "reuse": "catalog.queries",
    "find": "catalog.queries",
    "load_published": "catalog.published",
    "published_circuits": "catalog.published",
    "discover": "catalog.jobs",
    "load_model": "catalog.models",
    "CircuitDetail": "catalog.views",
    "draw": "catalog.draw",
    "layout": "catalog.layered",
    "measure_roles": "catalog.analysis.roles",
    "intervene": "catalog.analysis.interventions",
    "knockout": "catalog.analysis.knockout",
    "repair": "catalog.analysis.repair",
}

__all__ = [
    "Ablation", "Annotation", "AnnotationKind", "Catalog", "CatalogError", "Circuit", "CircuitDetail",
    "CircuitGraph", "Edge", "ModelShape", "Node", "Provenance", "Selection", "SelectionRule",
    "Source", "compare", "discover", "draw", "layout", "find", "import_file", "intervene", "knockout",
    "load_model", "load_published", "measure_roles", "open_catalog", "parse_component",
    "published_circuits", "read_circuits", "repair", "reuse", "write_circuit",
]


def open_catalog(url: str | None = None) -> Catalog:
    """Open (creating and migrating if new) the catalog at `url`: a path or SQLAlchemy URL.

    None means ``$CATALOG_DB``, then ``~/.local/share/circuit-catalog/catalog.db``.
    """
    from catalog.store import Catalog

    return Catalog.open(url)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'catalog.api' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
