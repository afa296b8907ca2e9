"""Conversion between domain values (`Circuit`, `Provenance`, graph parts) and table rows.

Kept apart from the queries so the mapping is in one place: what `add` writes is exactly what
`get` reads back, and `get(add(c))` equals `c` (graph, provenance, metrics, tags, name).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from catalog.bounds import check_encodable, stored_mapping
from catalog.errors import InvalidInputError
from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, ModelShape, Node
from catalog.naming import QKV, NodeKind, role_of
from catalog.provenance import Circuit, Provenance, Selection

_PROVENANCE_TEXT = ("source_format", "source_file", "source_sha256", "method", "dataset_hash", "metric",
                    "created_by", "citation", "notes")


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime; naive values are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def json_value(value: Any, what: str) -> Any:
    """Check that `value` can be stored as JSON on every backend (no NaN or infinity)."""
    try:
        check_encodable(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"The circuit's {what} cannot be stored: {exc}. Use JSON values (numbers, strings, lists, "
            "dicts) and finite numbers; store a missing value as null."
        ) from None
    return value


def _refuse_nul(pairs: Iterable[tuple[str, Any]]) -> None:
    for what, value in pairs:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInputError(
                f"The {what} {value[:60]!r} contains a NUL character, which the catalog cannot store "
                "(PostgreSQL refuses it in text). Remove it and try again."
            )


def check_text(circuit: Circuit) -> None:
    """Refuse NUL characters in any text of the circuit, on every backend alike."""
    g = circuit.graph
    _refuse_nul([("circuit name", circuit.name), ("task", circuit.task), ("model name", g.shape.name),
                 ("model revision", g.shape.revision), *(("tag", t) for t in circuit.tags),
                 *(("node id", n.id) for n in g.nodes),
                 *(("annotation", a.value) for a in g.annotations),
                 *(("annotation member", m) for a in g.annotations for m in a.members)])
    check_provenance_text(circuit.provenance)


# The schema's VARCHAR lengths (see schema.py). PostgreSQL enforces them and SQLite does not;
# the store checks them itself so both backends refuse the same values with the same message.
_LIMITS = {"circuit name": 300, "task": 200, "model name": 200, "model revision": 200, "tag": 200,
           "node id": 200, "dictionary": 200, "annotation node": 200}
_PROVENANCE_LIMITS = {"source_format": 100, "source_sha256": 64, "method": 100, "dataset_hash": 128,
                      "metric": 200, "created_by": 200}


def _refuse_long(pairs: Iterable[tuple[str, Any]], limits: Mapping[str, int]) -> None:
    for what, value in pairs:
        limit = limits[what]
        if isinstance(value, str) and len(value) > limit:
            raise InvalidInputError(
                f"The {what} {value[:40]!r}... is {len(value)} characters long; the catalog stores at most "
                f"{limit}. Shorten it and try again."
            )


def check_lengths(circuit: Circuit) -> None:
    """Refuse names, ids and tags longer than their columns, on every backend alike."""
    g = circuit.graph
    _refuse_long([("circuit name", circuit.name), ("task", circuit.task.strip()), ("model name", g.shape.name),
                  ("model revision", g.shape.revision), *(("tag", t) for t in circuit.tags),
                  *(("node id", n.id) for n in g.nodes), *(("dictionary", n.dictionary) for n in g.nodes),
                  *(("annotation node", a.node) for a in g.annotations)], _LIMITS)
    check_provenance_lengths(circuit.provenance)


def check_provenance_lengths(p: Provenance) -> None:
    _refuse_long(((f, getattr(p, f)) for f in _PROVENANCE_LIMITS), _PROVENANCE_LIMITS)


def check_provenance_text(p: Provenance) -> None:
    _refuse_nul((f"provenance {f}", getattr(p, f)) for f in _PROVENANCE_TEXT)


def provenance_columns(p: Provenance) -> dict[str, Any]:
    """Provenance as the column values shared by the runs and circuits tables."""
    sel = p.selection
    return {
        "source": p.source.value,
        "source_format": p.source_format,
        "source_file": p.source_file,
        "source_sha256": p.source_sha256,
        "method": p.method,
        "method_params": json_value(dict(p.method_params), "method parameters"),
        "dataset_hash": p.dataset_hash,
        "dataset_size": p.dataset_size,
        "seed": p.seed,
        "metric": p.metric,
        "ablation": p.ablation.value if p.ablation else None,
        "selection_rule": sel.rule.value if sel else None,
        "selection_value": sel.value if sel else None,
        "selection_absolute": sel.absolute if sel else None,
        "library_versions": json_value(dict(p.library_versions), "library versions"),
        "created_by": p.created_by,
        "created_at": utc(p.created_at),
        "citation": p.citation,
        "notes": p.notes,
        # Only set when greedy (NULL reads as not greedy), so a store at revision 0005 can still
        # write to tables from before it, as the migration tests do.
        **({"selection_greedy": True} if sel is not None and sel.greedy else {}),
    }


def provenance_from(row: Any) -> Provenance:
    """Rebuild a `Provenance` from a runs or circuits row."""
    selection = None
    if row.selection_rule is not None:
        selection = Selection(rule=row.selection_rule, value=row.selection_value,
                              absolute=bool(row.selection_absolute), greedy=bool(row.selection_greedy))
    return Provenance(
        source=row.source, source_format=row.source_format, source_file=row.source_file,
        source_sha256=row.source_sha256, method=row.method, method_params=stored_mapping(row.method_params),
        dataset_hash=row.dataset_hash, dataset_size=row.dataset_size, seed=row.seed, metric=row.metric,
        ablation=row.ablation, selection=selection, library_versions=stored_mapping(row.library_versions),
        created_by=row.created_by, created_at=utc(row.created_at), citation=row.citation, notes=row.notes,
    )


def shape_from(row: Any) -> ModelShape:
    return ModelShape(name=row.name, n_layers=row.n_layers, n_heads=row.n_heads, d_model=row.d_model,
                      revision=row.revision or None, parallel_attn_mlp=bool(row.parallel_attn_mlp))


NODE_COLUMNS = ("circuit_id", "node_id", "kind", "layer", "head", "feature", "position", "token", "dictionary",
                "score", "in_circuit", "member")
EDGE_COLUMNS = ("circuit_id", "src", "dst", "qkv", "score", "in_circuit")
ANNOTATION_COLUMNS = ("circuit_id", "kind", "node_id", "value", "members")
TAG_COLUMNS = ("circuit_id", "position", "tag")


def node_rows(circuit_id: int, graph: CircuitGraph) -> Iterator[tuple[Any, ...]]:
    """Rows (`NODE_COLUMNS`) for the nodes table; ``member`` marks circuit nodes (flagged, or an
    endpoint of an in-circuit edge). Rows are made as they are written, never all at once."""
    members = {n.id for n in graph.circuit_nodes}
    return ((circuit_id, n.id, n.kind.value, n.layer, n.head, n.feature, n.position, n.token, n.dictionary,
             n.score, n.in_circuit, n.id in members) for n in graph.nodes)


def edge_rows(circuit_id: int, graph: CircuitGraph) -> Iterator[tuple[Any, ...]]:
    """Rows (`EDGE_COLUMNS`) for the edges table, made as they are written."""
    return ((circuit_id, e.src, e.dst, e.qkv.value if e.qkv else None, e.score, e.in_circuit) for e in graph.edges)


def annotation_rows(circuit_id: int, graph: CircuitGraph) -> list[tuple[Any, ...]]:
    """Rows (`ANNOTATION_COLUMNS`) for the annotations table; members are JSON text."""
    return [(circuit_id, a.kind.value, a.node, a.value, json.dumps(list(a.members))) for a in graph.annotations]


def graph_from(shape: ModelShape, nodes: Iterable[Any], edges: Iterable[Any],
               annotations: Iterable[Any]) -> CircuitGraph:
    """Rebuild a graph from node, edge and annotation rows (validated again on construction)."""
    return CircuitGraph(
        shape,
        tuple(Node(id=r.node_id, kind=NodeKind(r.kind), layer=r.layer, head=r.head, feature=r.feature,
                   position=r.position, token=r.token, dictionary=r.dictionary, score=r.score,
                   in_circuit=bool(r.in_circuit), role=role_of(r.node_id)) for r in nodes),
        tuple(Edge(r.src, r.dst, QKV(r.qkv) if r.qkv else None, r.score, bool(r.in_circuit)) for r in edges),
        tuple(Annotation(AnnotationKind(r.kind), r.value, r.node_id, _members(r.members)) for r in annotations),
    )


def _members(stored: Any) -> tuple[str, ...]:
    """A group's member ids as stored; anything but a list of strings (a row written before
    validation existed) reads as no members, so that circuit still loads."""
    if not isinstance(stored, list):
        return ()
    return tuple(m for m in stored if isinstance(m, str))


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as a JSON-safe dict; NaN or infinite values are refused with a clear message."""
    out = dict(metrics)
    for key, value in out.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(
                f"Metric '{key}' is {value}; the catalog stores finite numbers only. Store None when a "
                "metric is undefined."
            )
    json_value(out, "metrics")
    return out
