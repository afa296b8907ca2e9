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
from collections.abc import Iterable, Sequence
from typing import Any

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
               edges: Iterable[Row], annotations: Iterable[Row]) -> str:
    """The content hash from plain values, as stored rows hold them.

    `model` is (name, revision, n_layers, n_heads, d_model, parallel_attn_mlp); each node is
    (id, kind, layer, head, feature, position, token, dictionary, score, in_circuit), each edge
    (src, dst, qkv or "", score, in_circuit), each annotation (kind, node or "", value, members).
    `content_hash` and the migration that fills in hashes for older catalogs both use it.

    The canonical text is hashed piece by piece: only the sorted items' encoded text is held,
    never the whole text or a list per item, so hashing a large scored graph stays small.
    """
    h = hashlib.sha256()
    name, revision, n_layers, n_heads, d_model, parallel = model
    head = {"v": _VERSION, "task": task.strip(),
            "model": [name, revision or "", n_layers, n_heads, d_model, bool(parallel)],
            "source": [source, source_sha256]}
    h.update(_dump(head)[:-1])  # the object stays open: the sorted lists follow
    for key, items in (("nodes", ([*n[:8], _num(n[8]), bool(n[9])] for n in nodes)),
                       ("edges", ([e[0], e[1], e[2] or "", _num(e[3]), bool(e[4])] for e in edges)),
                       ("annotations", ([a[0], a[1] or "", a[2], list(a[3])] for a in annotations))):
        h.update(b',"' + key.encode() + b'":[')
        # Sorting the compact texts as UTF-8 bytes gives the order of sorting the items by their
        # JSON text (UTF-8 keeps code-point order, and the separators sit at the same places).
        for i, text in enumerate(sorted(_dump(item) for item in items)):
            h.update(b"," + text if i else text)
        h.update(b"]")
    h.update(b"}")
    return h.hexdigest()


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")


def content_hash(circuit: Circuit) -> str:
    """SHA-256 (hex) of the circuit's canonical JSON: equal for the same content, whatever the order."""
    g = circuit.graph
    s = g.shape
    return parts_hash(circuit.task, (s.name, s.revision, s.n_layers, s.n_heads, s.d_model, s.parallel_attn_mlp),
                      circuit.provenance.source.value, circuit.provenance.source_sha256,
                      (node_part(n) for n in g.nodes), (edge_part(e) for e in g.edges),
                      ((a.kind.value, a.node, a.value, a.members) for a in g.annotations))
