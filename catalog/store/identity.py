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
from typing import Any

from catalog.provenance import Circuit

_VERSION = 1  # bump when the canonical form changes (old hashes then simply stop matching)


def _num(value: float | None) -> str | None:
    # float.hex is exact and stable across platforms; repr could differ for -0.0 vs 0.0 parsing.
    return None if value is None else float(value).hex()


def _sorted(items: Any) -> list[Any]:
    # Sort by the JSON text: total and stable even where a field mixes None and numbers.
    return sorted(items, key=lambda item: json.dumps(item, ensure_ascii=False))


def canonical_form(circuit: Circuit) -> dict[str, Any]:
    """The circuit's identity as plain, sorted JSON values."""
    g = circuit.graph
    s = g.shape
    return {
        "v": _VERSION,
        "task": circuit.task.strip(),
        "model": [s.name, s.revision or "", s.n_layers, s.n_heads, s.d_model, s.parallel_attn_mlp],
        "source": [circuit.provenance.source.value, circuit.provenance.source_sha256],
        "nodes": _sorted([n.id, n.kind.value, n.layer, n.head, n.feature, n.position, n.token, n.dictionary,
                         _num(n.score), n.in_circuit] for n in g.nodes),
        "edges": _sorted([e.src, e.dst, e.qkv.value if e.qkv else "", _num(e.score), e.in_circuit]
                        for e in g.edges),
        "annotations": _sorted([a.kind.value, a.node or "", a.value, list(a.members)] for a in g.annotations),
    }


def content_hash(circuit: Circuit) -> str:
    """SHA-256 (hex) of `canonical_form`: equal for the same content, whatever the order."""
    text = json.dumps(canonical_form(circuit), separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
