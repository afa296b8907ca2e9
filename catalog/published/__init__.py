"""Circuits from the literature, shipped as data files in ``catalog/published/data/``.

Each JSON file names a task, a model, the paper (citation and arXiv id), a confidence level and
the components by role::

    {"schema_version": 1, "name": "ioi-wang2022", "task": "ioi", "model": "gpt2-small",
     "method": "path-patching", "citation": "...", "arxiv": "2211.00593",
     "confidence": "high" | "low", "tags": [...], "notes": "...",
     "components": {"name mover": ["a9.h9", ...], ...},
     "other_nodes": ["input", "logits"], "node_notes": {"a1.h0": "..."},
     "edges": ["a0.h1->a3.h2<q>", ...],         # optional: edges the paper lists
     "class_edges": [{"from": "S-inhibition", "to": "name mover", "qkv": "q"}, ...],  # optional
     "edges_source": "..."}                     # optional: where the edges come from

A paper usually draws arrows between classes of components rather than listing edges;
``class_edges`` records them and `expand_class_edges` turns each into the head-to-head edges it
stands for: ``from`` and ``to`` are a role name, ``input``, ``logits`` or a list of node ids;
``qkv`` names the head inputs the arrow feeds (default ``qkv``: all three). Only pairs that go
forward in the model are kept, so an arrow from a class to itself links its members in layer
order. The circuit carries a note annotation starting ``edges from the paper:`` with
``edges_source``.

They are stored with ``source=published``, the citation, and selection rule ``given``.
`load_published` is idempotent: a circuit already loaded (same content hash) is not added again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from catalog.errors import FormatError, InvalidInputError, suggest
from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, Node
from catalog.naming import QKV, NodeKind, forward_rank, parse_edge
from catalog.provenance import Circuit, Provenance, Selection, SelectionRule, Source
from catalog.shapes import require_shape

if TYPE_CHECKING:
    from catalog.store import Added, Catalog

SCHEMA_VERSION = 1
SOURCE_FORMAT = "published"
_REQUIRED = ("name", "task", "model", "citation", "arxiv", "confidence", "components")
_CONFIDENCE = ("high", "low")
PAPER_EDGES = "edges from the paper"  # how the note on a published circuit's edges begins


@dataclass(frozen=True)
class PublishedCircuit:
    """One shipped data file, parsed: its file name, content hash and circuit."""

    file: str
    sha256: str
    circuit: Circuit
    arxiv: str = ""

    @property
    def name(self) -> str:
        return self.circuit.name or self.file

    @property
    def confidence(self) -> str:
        return "low" if "low-confidence" in self.circuit.tags else "high"


def _data_files() -> list[tuple[str, bytes]]:
    folder = resources.files(__name__) / "data"
    return sorted((f.name, f.read_bytes()) for f in folder.iterdir() if f.name.endswith(".json"))


def parse_published(file: str, raw: bytes) -> PublishedCircuit:
    """Parse one published-circuit file (format above) into a circuit; `FormatError` if malformed."""
    try:
        doc: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"Published circuit file {file} is not valid JSON ({e}).") from None
    if not isinstance(doc, dict):
        raise FormatError(f"Published circuit file {file} must hold a JSON object.")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise FormatError(f"Published circuit file {file} has schema_version "
                          f"{doc.get('schema_version')!r}; this version reads {SCHEMA_VERSION}.")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise FormatError(f"Published circuit file {file} lacks {', '.join(missing)}.")
    if doc["confidence"] not in _CONFIDENCE:
        raise FormatError(f"Published circuit file {file}: confidence must be high or low.")
    try:
        return PublishedCircuit(file, hashlib.sha256(raw).hexdigest(), _circuit(file, doc),
                                str(doc["arxiv"]))
    except InvalidInputError as e:
        raise FormatError(f"Published circuit file {file}: {e}") from None


def _circuit(file: str, doc: dict[str, Any]) -> Circuit:
    shape = require_shape(doc["model"])
    roles: dict[str, list[str]] = doc["components"]
    node_notes: dict[str, str] = doc.get("node_notes", {})
    ids = [i for members in roles.values() for i in members] + list(doc.get("other_nodes", []))
    nodes = tuple(Node.of(i) for i in dict.fromkeys(ids))
    edges = []
    for text in doc.get("edges", []):
        src, dst, qkv = parse_edge(text)
        edges.append(Edge(src, dst, qkv))
    listed = {e.key for e in edges}
    edges += [e for e in expand_class_edges(doc.get("class_edges", []), roles, shape.parallel_attn_mlp)
              if e.key not in listed]
    anns = [Annotation(AnnotationKind.ROLE, role, node=i) for role, members in roles.items()
            for i in members]
    anns += [Annotation(AnnotationKind.NOTE, note, node=i) for i, note in node_notes.items()]
    anns.append(Annotation(AnnotationKind.CITATION, doc["citation"]))
    anns.append(Annotation(AnnotationKind.NOTE, f"confidence: {doc['confidence']}"))
    if edges:
        source = doc.get("edges_source")
        anns.append(Annotation(AnnotationKind.NOTE, f"{PAPER_EDGES}: {source}" if source else PAPER_EDGES))
    tags = list(doc.get("tags", []))
    if doc["confidence"] == "low" and "low-confidence" not in tags:
        tags.append("low-confidence")
    provenance = Provenance(
        source=Source.PUBLISHED,
        source_format=SOURCE_FORMAT,
        source_file=f"catalog/published/data/{file}",
        method=doc.get("method"),
        selection=Selection(rule=SelectionRule.GIVEN),
        library_versions={},
        citation=f"{doc['citation']} (arXiv:{doc['arxiv']})"
        if f"arXiv:{doc['arxiv']}" not in doc["citation"] else doc["citation"],
        notes=doc.get("notes"),
    )
    graph = CircuitGraph(shape, nodes, tuple(edges), tuple(anns))
    return Circuit(graph=graph, task=doc["task"], provenance=provenance, name=doc["name"],
                   tags=tuple(tags))


def expand_class_edges(arrows: list[dict[str, Any]], roles: dict[str, list[str]],
                       parallel_attn_mlp: bool = False) -> list[Edge]:
    """Expand class-to-class arrows into node-to-node edges (see the module docstring).

    >>> roles = {"induction": ["a5.h5", "a6.h9"], "S-inhibition": ["a7.h3"]}
    >>> [e.id for e in expand_class_edges([{"from": "induction", "to": "S-inhibition", "qkv": "kv"},
    ...                                    {"from": "S-inhibition", "to": "logits"}], roles)]
    ['a5.h5->a7.h3<k>', 'a5.h5->a7.h3<v>', 'a6.h9->a7.h3<k>', 'a6.h9->a7.h3<v>', 'a7.h3->logits']
    """
    def members(ref: Any) -> list[str]:
        if isinstance(ref, list):
            return [str(r) for r in ref]
        if ref in ("input", "logits"):
            return [ref]
        if ref not in roles:
            raise suggest(str(ref), list(roles) + ["input", "logits"], "component class")
        return list(roles[ref])

    out: list[Edge] = []
    seen: set[tuple[str, str, str]] = set()
    for arrow in arrows:
        if not isinstance(arrow, dict) or not {"from", "to"} <= set(arrow):
            raise InvalidInputError(f"class_edges entry {arrow!r} needs 'from' and 'to'.")
        letters = str(arrow.get("qkv", "qkv"))
        if not letters or set(letters) - set("qkv"):
            raise InvalidInputError(f"class_edges entry {arrow!r}: qkv must be letters among q, k, v.")
        for src in members(arrow["from"]):
            for dst in members(arrow["to"]):
                a, b = Node.of(src), Node.of(dst)
                if forward_rank(a.component, parallel_attn_mlp) >= forward_rank(b.component, parallel_attn_mlp):
                    continue  # an arrow only stands for the pairs that go forward
                for qkv in (letters if b.kind is NodeKind.ATTENTION else (None,)):
                    edge = Edge(a.id, b.id, QKV(qkv) if qkv else None)
                    if edge.key not in seen:
                        seen.add(edge.key)
                        out.append(edge)
    return out


def published_circuits() -> list[PublishedCircuit]:
    """Every circuit shipped with the package, parsed and validated, in file-name order."""
    out = []
    for file, raw in _data_files():
        entry = parse_published(file, raw)
        out.append(PublishedCircuit(entry.file, entry.sha256, _with_hash(entry), entry.arxiv))
    return out


def _with_hash(entry: PublishedCircuit) -> Circuit:
    c = entry.circuit
    prov = c.provenance.model_copy(update={"source_sha256": entry.sha256})
    return Circuit(graph=c.graph, task=c.task, provenance=prov, name=c.name, tags=c.tags)


def load_published(cat: Catalog, names: Iterable[str] | None = None,
                   allow_duplicate: bool = False) -> list[Added]:
    """Add the shipped circuits (all, or those named) to `cat` in one transaction; one `Added` each.

    Idempotent, also with several processes loading at once: a circuit already in the catalog
    (same content hash, see `catalog.store.identity`) is not added again; its `Added` names the
    existing id, with ``duplicate=True``. `allow_duplicate` adds them again anyway.
    """
    entries = published_circuits()
    if names is not None:
        known = {e.name: e for e in entries}
        wanted = list(dict.fromkeys(names))
        for n in wanted:
            if n not in known:
                raise suggest(n, list(known), "published circuit")
        entries = [known[n] for n in wanted]
    return cat.add_many([e.circuit for e in entries], allow_duplicate=allow_duplicate)
