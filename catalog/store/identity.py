"""What makes two imported circuits the same: a canonical content hash.

Imports and published circuits are deduplicated by this hash (a UNIQUE column), so loading the
same file twice, or from two processes at once, stores each circuit once. The hash covers what
the circuit *is* (every node, edge and annotation, the model shape, the task) and where it came
from (source kind and the source file's SHA-256); it leaves out labels a user may change on the
way in (name, tags) and the time of import. Order does not matter: parts are sorted first.

>>> from catalog.graph import CircuitGraph, ModelShape
>>> from catalog.provenance import Circuit, Provenance
>>> g = CircuitGraph.build(ModelShape("toy", n_layers=1, n_heads=1), ["input", "a0.h0", "logits"],
...                        [("input", "a0.h0", "v", 0.5), ("a0.h0", "logits", None, 1.0)])
>>> c = Circuit(g, "ioi", Provenance(source="import", source_sha256="ab" * 32))
>>> h = content_hash(c)
>>> len(h), h == content_hash(Circuit(g, "ioi", c.provenance, name="renamed", tags=("x",)))
(64, True)
>>> h == content_hash(Circuit(g, "greater-than", c.provenance))
False
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from catalog.graph import Edge, Node
from catalog.provenance import Circuit

_VERSION = 1  # bump when the canonical form changes (old hashes then simply stop matching)


def _num(value: float | None) -> str | None:
    # float.hex is exact and stable across platforms; repr could differ for -0.0 vs 0.0 parsing.
    return None if value is None else float(value).hex()


Row = Sequence[Any]


def node_part(n: Node) -> list[Any]:
    """A node as the hash sees it (the fields of a ``nodes`` row, in column order)."""
    return [n.id, n.kind.value, n.layer, n.head, n.feature, n.position, n.token, n.dictionary, n.score, n.in_circuit]


def edge_part(e: Edge) -> list[Any]:
    """An edge as the hash sees it (the fields of an ``edges`` row, in column order)."""
    return [e.src, e.dst, e.qkv.value if e.qkv else "", e.score, e.in_circuit]


def parts_hash(task: str, model: Row, source: str, source_sha256: str | None, nodes: Iterable[Row],
               edges: Sequence[Row], annotations: Iterable[Row]) -> str:
    """The content hash from plain values, as stored rows hold them.

    `model` is (name, revision, n_layers, n_heads, d_model, parallel_attn_mlp); each node is
    (id, kind, layer, head, feature, position, token, dictionary, score, in_circuit), each edge
    (src, dst, qkv or "", score, in_circuit), each annotation (kind, node or "", value, members).
    `content_hash` and the migration that fills in hashes for older catalogs both use it.

    The canonical text is hashed piece by piece, never held whole: nodes and annotations (few)
    by their sorted texts, edges (many) through one integer each (`_edge_order`).
    """
    h = hashlib.sha256()
    name, revision, n_layers, n_heads, d_model, parallel = model
    head = {"v": _VERSION, "task": task.strip(),
            "model": [name, revision or "", n_layers, n_heads, d_model, bool(parallel)],
            "source": [source, source_sha256]}
    h.update(_dump(head)[:-1])  # the object stays open: the sorted lists follow
    edge_texts = (_dump([e[0], e[1], e[2] or "", _num(e[3]), bool(e[4])]) for e in _edge_order(edges))
    for key, texts in (("nodes", sorted(_dump([*n[:8], _num(n[8]), bool(n[9])]) for n in nodes)),
                       ("edges", edge_texts),
                       ("annotations", sorted(_dump([a[0], a[1] or "", a[2], list(a[3])]) for a in annotations))):
        h.update(b',"' + key.encode() + b'":[')
        # Sorting the compact texts as UTF-8 bytes gives the order of sorting the items by their
        # JSON text (UTF-8 keeps code-point order, and the separators sit at the same places).
        for i, text in enumerate(texts):
            h.update(b"," + text if i else text)
        h.update(b"]")
    h.update(b"}")
    return h.hexdigest()


def _edge_order(edges: Sequence[Row]) -> Iterator[Row]:
    """The edges in the order of their canonical texts, from one integer per edge.

    An edge's text begins with its three strings (src, dst, qkv), and two texts first differ
    inside the first string they differ in (a JSON string ends at its unescaped quote), so while
    no two edges share all three, text order is the order of the three strings' own texts: rank
    each distinct string by its text and sort ``key * n + index``. Edges that do share them (none
    in a valid graph) fall back to sorting the full texts.
    """
    ranks: dict[str, int] = {}
    for e in edges:
        ranks[e[0]] = ranks[e[1]] = ranks[e[2] or ""] = 0
    for i, text in enumerate(sorted(ranks, key=_dump)):
        ranks[text] = i
    width, n = len(ranks), len(edges)
    order = [((ranks[e[0]] * width + ranks[e[1]]) * width + ranks[e[2] or ""]) * n + i for i, e in enumerate(edges)]
    order.sort()
    if any(a // n == b // n for a, b in zip(order, order[1:])):
        order = sorted(range(n), key=lambda i: _dump([edges[i][0], edges[i][1], edges[i][2] or "",
                                                      _num(edges[i][3]), bool(edges[i][4])]))
        return (edges[i] for i in order)
    return (edges[k % n] for k in order)


class _EdgeRows(Sequence[Row]):
    """A graph's edges seen as rows, made one at a time (no list of rows beside the edges)."""

    def __init__(self, edges: Sequence[Edge]) -> None:
        self._edges = edges

    def __len__(self) -> int:
        return len(self._edges)

    @overload
    def __getitem__(self, i: int) -> Row: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Row]: ...

    def __getitem__(self, i: int | slice) -> Row | Sequence[Row]:
        if isinstance(i, slice):
            return [edge_part(e) for e in self._edges[i]]
        return edge_part(self._edges[i])


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")


def content_hash(circuit: Circuit) -> str:
    """SHA-256 (hex) of the circuit's canonical JSON: equal for the same content, whatever the order."""
    g = circuit.graph
    s = g.shape
    return parts_hash(circuit.task, (s.name, s.revision, s.n_layers, s.n_heads, s.d_model, s.parallel_attn_mlp),
                      circuit.provenance.source.value, circuit.provenance.source_sha256,
                      (node_part(n) for n in g.nodes), _EdgeRows(g.edges),
                      ((a.kind.value, a.node, a.value, a.members) for a in g.annotations))
