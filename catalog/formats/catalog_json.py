"""The catalog's own JSON: one circuit (or ``{"schema_version": 1, "circuits": [...]}``) with its
model shape, task, name, tags, metrics, provenance, nodes, edges and annotations.

It round-trips a circuit exactly: ``read(write(c))`` equals ``c`` in graph, provenance, metrics,
tags and name. The provenance is kept as written (it says how the circuit was made); the
catalog id is not written, since an import creates a new record.

Version 1 layout::

    {"schema_version": 1, "format": "circuit-catalog",
     "model": {"name", "n_layers", "n_heads", "d_model", "revision", "parallel_attn_mlp"},
     "task": "ioi", "name": "...", "tags": [...], "metrics": {...}, "provenance": {...},
     "nodes": [{"id": "a9.h9", "score": 0.5, "in_circuit": true}, ...],
     "edges": [{"src": "a5.h5", "dst": "a9.h9", "qkv": "k", "score": 0.1, "in_circuit": true}, ...],
     "annotations": [{"kind": "role", "value": "name mover", "node": "a9.h9", "members": []}, ...]}
"""

from __future__ import annotations

import json
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from catalog.errors import CatalogError, FormatError
from catalog.formats.files import RawFile, check_finite_json
from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, ModelShape, Node
from catalog.naming import QKV
from catalog.provenance import Circuit, Provenance

FORMAT = "catalog-json"
SCHEMA_VERSION = 1
MARKER = "circuit-catalog"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ModelDoc(_Strict):
    name: str
    n_layers: int
    n_heads: int
    d_model: int | None = None
    revision: str | None = None
    parallel_attn_mlp: bool = False


class NodeDoc(_Strict):
    id: str
    score: float | None = None
    in_circuit: bool = True
    token: int | None = None


class EdgeDoc(_Strict):
    src: str
    dst: str
    qkv: Literal["q", "k", "v"] | None = None
    score: float | None = None
    in_circuit: bool = True


class AnnotationDoc(_Strict):
    kind: Literal["role", "label", "group", "citation", "note"]
    value: str
    node: str | None = None
    members: list[str] = []


class CircuitDoc(_Strict):
    schema_version: int | None = None
    format: str | None = None
    model: ModelDoc
    task: str
    name: str | None = None
    tags: list[str] = []
    metrics: dict[str, Any] = {}
    provenance: dict[str, Any]
    nodes: list[NodeDoc]
    edges: list[EdgeDoc] = []
    annotations: list[AnnotationDoc] = []


def shape_to_dict(shape: ModelShape) -> dict[str, Any]:
    return {"name": shape.name, "n_layers": shape.n_layers, "n_heads": shape.n_heads,
            "d_model": shape.d_model, "revision": shape.revision,
            "parallel_attn_mlp": shape.parallel_attn_mlp}


def annotation_to_dict(a: Annotation) -> dict[str, Any]:
    return {"kind": a.kind.value, "value": a.value, "node": a.node, "members": list(a.members)}


def circuit_to_dict(c: Circuit) -> dict[str, Any]:
    """The version-1 document for one circuit."""
    g = c.graph
    nodes = []
    for n in g.nodes:
        d: dict[str, Any] = {"id": n.id, "score": n.score, "in_circuit": n.in_circuit}
        if n.token is not None and n.kind.value != "logits":
            d["token"] = n.token
        nodes.append(d)
    return {
        "schema_version": SCHEMA_VERSION, "format": MARKER,
        "model": shape_to_dict(g.shape), "task": c.task, "name": c.name, "tags": list(c.tags),
        "metrics": c.metrics, "provenance": c.provenance.model_dump(mode="json"),
        "nodes": nodes,
        "edges": [{"src": e.src, "dst": e.dst, "qkv": e.qkv.value if e.qkv else None,
                   "score": e.score, "in_circuit": e.in_circuit} for e in g.edges],
        "annotations": [annotation_to_dict(a) for a in g.annotations],
    }


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "top level"
    return f"{loc}: {err['msg']}"


def provenance_from_dict(data: Any, where: str) -> Provenance:
    try:
        return Provenance.model_validate(data)
    except ValidationError as exc:
        raise FormatError(f"{where}: provenance is invalid ({_first_error(exc)}).") from None


def annotations_from_docs(docs: list[AnnotationDoc]) -> tuple[Annotation, ...]:
    return tuple(Annotation(AnnotationKind(a.kind), a.value, a.node, tuple(a.members)) for a in docs)


def circuit_from_dict(data: Any, where: str) -> Circuit:
    """Validate a version-1 document and build its circuit (errors name the offending field)."""
    try:
        doc = CircuitDoc.model_validate(data)
    except ValidationError as exc:
        raise FormatError(f"{where} is not a valid circuit-catalog JSON circuit ({_first_error(exc)}).") from None
    if doc.schema_version not in (None, SCHEMA_VERSION):
        raise FormatError(
            f"{where} has schema_version {doc.schema_version}; this circuit-catalog reads version "
            f"{SCHEMA_VERSION}. Upgrade circuit-catalog to read it."
        )
    check_finite_json(doc.metrics, f"{where}: metrics")
    prov = provenance_from_dict(doc.provenance, where)
    m = doc.model
    try:
        shape = ModelShape(m.name, m.n_layers, m.n_heads, m.d_model, m.revision, m.parallel_attn_mlp)
        nodes = tuple(Node.of(n.id, score=n.score, in_circuit=n.in_circuit, token=n.token) for n in doc.nodes)
        edges = tuple(Edge(e.src, e.dst, QKV(e.qkv) if e.qkv else None, e.score, e.in_circuit)
                      for e in doc.edges)
        graph = CircuitGraph(shape, nodes, edges, annotations_from_docs(doc.annotations))
    except CatalogError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    return Circuit(graph=graph, task=doc.task, provenance=prov, name=doc.name,
                   tags=tuple(doc.tags), metrics=dict(doc.metrics))


def read(raw: RawFile, doc: Any, model: str | None = None, task: str | None = None,
         name: str | None = None, top_k: int | None = None) -> list[Circuit]:
    """Read one circuit, or every circuit of a ``{"circuits": [...]}`` document.

    `model` must agree with the file; `task` and `name` override it; `top_k` reselects."""
    if isinstance(doc, dict) and "circuits" in doc:
        items = doc["circuits"]
        extra = set(doc) - {"circuits", "schema_version", "format"}
        if not isinstance(items, list) or not items or extra:
            raise FormatError(
                f"{raw.display_name}: 'circuits' must be a non-empty list of circuits and the only "
                "other keys schema_version and format."
            )
        if doc.get("schema_version") not in (None, SCHEMA_VERSION):
            raise FormatError(
                f"{raw.display_name} has schema_version {doc.get('schema_version')!r}; this "
                f"circuit-catalog reads version {SCHEMA_VERSION}."
            )
    else:
        items = [doc]
    out: list[Circuit] = []
    for i, item in enumerate(items):
        where = raw.display_name if len(items) == 1 else f"{raw.display_name} circuit {i + 1}"
        c = circuit_from_dict(item, where)
        out.append(apply_overrides(c, where, model, task, name, top_k))
    return out


def apply_overrides(c: Circuit, where: str, model: str | None, task: str | None,
                    name: str | None, top_k: int | None) -> Circuit:
    """Apply --task/--name/--top-k to a circuit read from our own formats; --model must agree."""
    from dataclasses import replace

    from catalog.provenance import Selection, SelectionRule
    from catalog.shapes import canonical_model_name

    if model and canonical_model_name(model) != c.graph.shape.name:
        raise FormatError(
            f"{where} holds a circuit on {c.graph.shape.name}, not {model}; drop --model or "
            "import the right file."
        )
    if top_k is not None:
        sel = Selection(rule=SelectionRule.TOP_K, value=top_k, absolute=True)
        c = replace(c, graph=c.graph.top_k(top_k),
                    provenance=c.provenance.model_copy(update={"selection": sel}))
    if task:
        c = replace(c, task=task)
    if name:
        c = replace(c, name=name)
    return c


def write(circuit: Circuit, fh: IO[str]) -> None:
    """Write one circuit as version-1 catalog JSON (no NaN: scores and metrics are finite)."""
    check_finite_json(circuit.metrics, "metrics")
    json.dump(circuit_to_dict(circuit), fh, allow_nan=False)
