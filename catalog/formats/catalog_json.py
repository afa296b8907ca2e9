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
from typing import IO, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from catalog.errors import CatalogError, FormatError
from catalog.formats.files import RawFile, check_finite_json
from catalog.formats.stream import ARRAY, Events, JsonFile
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


class HeadDoc(_Strict):
    """A circuit document's fields other than its records (nodes, edges, annotations), which are
    validated one at a time as they are read; here they only have to be there and be lists."""

    schema_version: int | None = None
    format: str | None = None
    model: ModelDoc
    task: str
    name: str | None = None
    tags: list[str] = []
    metrics: dict[str, Any] = {}
    provenance: dict[str, Any]
    nodes: list[Any]
    edges: list[Any] = []
    annotations: list[Any] = []


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


def _validated(model: type[_M], value: Any, where: str, at: str) -> _M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in (at, *err["loc"]) if x != "") or "top level"
        raise FormatError(f"{where} is not a valid circuit-catalog JSON circuit ({loc}: {err['msg']}).") from None


_M = TypeVar("_M", bound=_Strict)


class CircuitParts:
    """One circuit's records as they are read: each validated through its pydantic model and
    turned into a `Node`, `Edge` or `Annotation` at once (edges share their nodes' id strings)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.annotations: list[Annotation] = []
        self._ids: dict[str, str] = {}

    def add(self, key: str, item: Any, i: int) -> None:
        try:
            if key == "nodes":
                n = _validated(NodeDoc, item, self.where, f"nodes.{i}")
                node = Node.of(n.id, score=n.score, in_circuit=n.in_circuit, token=n.token)
                self._ids[node.id] = node.id
                self.nodes.append(node)
            elif key == "edges":
                e = _validated(EdgeDoc, item, self.where, f"edges.{i}")
                self.edges.append(Edge(self._ids.get(e.src, e.src), self._ids.get(e.dst, e.dst),
                                       QKV(e.qkv) if e.qkv else None, e.score, e.in_circuit))
            else:
                a = _validated(AnnotationDoc, item, self.where, f"annotations.{i}")
                self.annotations.append(Annotation(AnnotationKind(a.kind), a.value, a.node, tuple(a.members)))
        except FormatError:
            raise
        except CatalogError as exc:
            raise type(exc)(f"{self.where}: {exc}") from None


def circuit_from_parts(head: Any, parts: CircuitParts) -> Circuit:
    """Validate a circuit's head fields and build its circuit from the records already read."""
    where = parts.where
    doc = _validated(HeadDoc, head, where, "")
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
        graph = CircuitGraph(shape, tuple(parts.nodes), tuple(parts.edges), tuple(parts.annotations))
    except CatalogError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    return Circuit(graph=graph, task=doc.task, provenance=prov, name=doc.name,
                   tags=tuple(doc.tags), metrics=dict(doc.metrics))


_RECORD_KEYS = ("nodes", "edges", "annotations")


def circuit_from_dict(data: Any, where: str) -> Circuit:
    """Validate a version-1 document (a dict) and build its circuit (errors name the offending field)."""
    parts = CircuitParts(where)
    head = dict(data) if isinstance(data, dict) else data
    if isinstance(head, dict):
        for key in _RECORD_KEYS:
            if isinstance(head.get(key), list):
                for i, item in enumerate(head[key]):
                    parts.add(key, item, i)
                head[key] = []
    return circuit_from_parts(head, parts)


def _streamed_circuit(ev: Events, first: tuple[str, Any], depth: int, where: str,
                      last: RawFile | None = None) -> Circuit:
    """Read one circuit object from the event stream, its records one at a time; for the file's
    `last` circuit, release the file's bytes before the graph is built."""
    if first[0] != "start_map":
        return circuit_from_dict(ev.value(depth, first), where)
    parts = CircuitParts(where)
    head: dict[str, Any] = {}
    for key in ev.keys():
        start = ev.next()
        if key in _RECORD_KEYS and start[0] == "start_array":
            for i, item in enumerate(ev.items(depth + 1)):
                parts.add(key, item, i)
            head[key] = []
        else:
            head[key] = ev.value(depth + 1, start, at=(key,))
    if last is not None:
        ev.finish()
        last.release()
    return circuit_from_parts(head, parts)


def read(raw: RawFile, doc: JsonFile, model: str | None = None, task: str | None = None,
         name: str | None = None, top_k: int | None = None) -> list[Circuit]:
    """Read one circuit, or every circuit of a ``{"circuits": [...]}`` document, streaming each
    circuit's records.

    `model` must agree with the file; `task` and `name` override it; `top_k` reselects."""
    top = doc.top
    out: list[Circuit] = []
    if isinstance(top, dict) and "circuits" in top:
        extra = set(top) - {"circuits", "schema_version", "format"}
        count = doc.count("circuits") if top["circuits"] is ARRAY else 0
        if not count or extra:
            raise FormatError(
                f"{raw.display_name}: 'circuits' must be a non-empty list of circuits and the only "
                "other keys schema_version and format."
            )
        if top.get("schema_version") not in (None, SCHEMA_VERSION):
            raise FormatError(
                f"{raw.display_name} has schema_version {top.get('schema_version')!r}; this "
                f"circuit-catalog reads version {SCHEMA_VERSION}."
            )
        ev = doc.member("circuits")
        ev.next()  # start_array
        for i in range(count):
            where = raw.display_name if count == 1 else f"{raw.display_name} circuit {i + 1}"
            c = _streamed_circuit(ev, ev.next(), 2, where, raw if i == count - 1 else None)
            out.append(apply_overrides(c, where, model, task, name, top_k))
        return out
    ev = doc.events()
    c = _streamed_circuit(ev, ev.next(), 0, raw.display_name, raw)
    return [apply_overrides(c, raw.display_name, model, task, name, top_k)]


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
