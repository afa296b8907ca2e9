"""The content hash is computed piece by piece (`parts_hash`) but must stay the hash every catalog
already stores: these tests pin it to the canonical text it was defined by."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest

from catalog.formats import read_circuits
from catalog.formats.examples import example_text, toy_circuit
from catalog.graph import Annotation, AnnotationKind, CircuitGraph
from catalog.provenance import Circuit
from catalog.store.identity import content_hash


def _defining_hash(circuit: Circuit) -> str:
    """The hash as first defined: one canonical JSON document, items sorted by their JSON text."""
    def num(v: float | None) -> str | None:
        return None if v is None else float(v).hex()

    def ordered(items: Any) -> list[Any]:
        return sorted(items, key=lambda item: json.dumps(item, ensure_ascii=False))

    g, s = circuit.graph, circuit.graph.shape
    form = {
        "v": 1, "task": circuit.task.strip(),
        "model": [s.name, s.revision or "", s.n_layers, s.n_heads, s.d_model, s.parallel_attn_mlp],
        "source": [circuit.provenance.source.value, circuit.provenance.source_sha256],
        "nodes": ordered([n.id, n.kind.value, n.layer, n.head, n.feature, n.position, n.token, n.dictionary,
                          num(n.score), n.in_circuit] for n in g.nodes),
        "edges": ordered([e.src, e.dst, e.qkv.value if e.qkv else "", num(e.score), e.in_circuit] for e in g.edges),
        "annotations": ordered([a.kind.value, a.node or "", a.value, list(a.members)] for a in g.annotations),
    }
    text = json.dumps(form, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _awkward(c: Circuit) -> Circuit:
    """Annotations whose texts differ only where separators, quotes and non-ASCII sort."""
    ids = [n.id for n in c.graph.nodes]
    texts = ["a, b", "a,b", "a b", 'say "hi"', "é", "e\u0301", "\u4e2d", "\U0001f600", "a\\b", "", " "]
    anns = tuple(Annotation(AnnotationKind.NOTE, t) for t in texts) + tuple(
        Annotation(AnnotationKind.GROUP, t, members=tuple(ids[: i + 1])) for i, t in enumerate(texts[:4]))
    g = CircuitGraph(c.graph.shape, c.graph.nodes, c.graph.edges, c.graph.annotations + anns)
    return replace(c, graph=g, task=" ioi ")


@pytest.mark.parametrize("fmt", ["catalog-json", "eap-ig", "circuit-tracer", "graphml"])
def test_the_content_hash_is_the_canonical_documents_hash(tmp_path, fmt):
    path = tmp_path / ("ioi.graphml" if fmt == "graphml" else "ioi.json")
    path.write_text(example_text(fmt), encoding="utf-8")
    extra = {"task": "ioi"} if fmt == "circuit-tracer" else {}
    for circuit in read_circuits(path, **extra) + [toy_circuit()]:
        for c in (circuit, _awkward(circuit)):
            assert content_hash(c) == _defining_hash(c)


def test_rows_sharing_ends_fall_back_to_their_full_text():
    """The migration hashes stored rows; rows that repeat an edge's ends still hash canonically."""
    from catalog.store.identity import parts_hash

    edges = [("m1", "logits", None, 0.5, 1), ("input", "m1", None, 2.0, 0), ("m1", "logits", None, -1.0, 1),
             ("input", "a0.h0", "q", 1.0, 1), ("input", "a0.h0", "k", None, 1), ("m1", "logits", None, 0.25, 0)]
    nodes = [("input", "input", None, None, None, None, None, None, None, 1)]
    rows = [(e[0], e[1], e[2] or "", None if e[3] is None else float(e[3]).hex(), bool(e[4])) for e in edges]
    form = {"v": 1, "task": "t", "model": ["m", "", 2, 1, None, False], "source": ["import", None],
            "nodes": [["input", "input", None, None, None, None, None, None, None, True]],
            "edges": sorted((list(r) for r in rows), key=lambda item: json.dumps(item, ensure_ascii=False)),
            "annotations": []}
    text = json.dumps(form, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert parts_hash("t", ("m", None, 2, 1, None, False), "import", None, nodes, edges, []) == expected
