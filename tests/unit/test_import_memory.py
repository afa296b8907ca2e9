"""An import holds at most 5x its file's size in memory, for every format: the readers stream
records one at a time instead of parsing the whole document beside the circuit.

Measured with tracemalloc over `import_file` (reading, validation, the graph build, the content
hash and the inserts) on GPT-2-small-sized files of about 2 MB, where every parsed-document
reader was over the bound (EAP-IG 7.3x, circuit-tracer 6.2x, catalog JSON 15x, GraphML 16x).
`benchmarks/bench_import.py` prints the same figures with the resident set beside them.
"""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import pytest

from catalog.formats import import_file, read_circuits, write_circuit
from catalog.formats.circuit_tracer import cantor_pair
from catalog.formats.eap_ig import implied_edges
from catalog.formats.examples import example_text
from catalog.graph import CircuitGraph, Edge, Node
from catalog.naming import QKV
from catalog.provenance import Circuit, Provenance, Source
from catalog.shapes import KNOWN_SHAPES
from catalog.store import Catalog

BOUND = 5.0


def _gpt2_circuit() -> Circuit:
    """Every edge of GPT-2 small's EAP-IG graph, scored, 2% in the circuit."""
    rng = random.Random(0)
    edges = [Edge(s, d, QKV(q) if q else None, rng.gauss(0, 1), rng.random() < 0.02)
             for s, d, q in implied_edges(12, 12, False)]
    nodes = {e.src for e in edges} | {e.dst for e in edges}
    g = CircuitGraph(KNOWN_SHAPES["gpt2-small"], tuple(Node.of(n) for n in nodes), tuple(edges))
    return Circuit(g, "ioi", Provenance(source=Source.DISCOVERY), name="gpt2 ioi")


def _attribution_graph(n_features: int = 2000) -> dict:
    """A Gemma-2-2B attribution graph with `n_features` features and about 8 links each."""
    rng = random.Random(1)
    nodes = [{"node_id": f"E_{i}", "feature": i, "layer": "E", "ctx_idx": i, "feature_type": "embedding",
              "clerp": ""} for i in range(8)]
    seen = set()
    while len(nodes) < n_features + 8:
        layer, idx, ctx = rng.randrange(26), rng.randrange(16384), rng.randrange(8)
        if (layer, idx, ctx) not in seen:
            seen.add((layer, idx, ctx))
            nodes.append({"node_id": f"{layer}_{idx}_{ctx}", "feature": cantor_pair(layer, idx), "layer": str(layer),
                          "ctx_idx": ctx, "feature_type": "cross layer transcoder", "clerp": f"feature {idx}",
                          "activation": rng.random()})
    nodes.append({"node_id": "L", "feature": 2135, "layer": "27", "ctx_idx": 7, "feature_type": "logit"})

    def rank(nd: dict) -> tuple[int, int]:
        return nd["ctx_idx"], -1 if nd["layer"] == "E" else int(nd["layer"])

    pairs: set[tuple[str, str]] = set()
    while len(pairs) < 8 * len(nodes):
        a, b = rng.sample(nodes, 2)
        (pa, la), (pb, lb) = rank(a), rank(b)
        if pa <= pb and la < lb:
            pairs.add((a["node_id"], b["node_id"]))
    return {"metadata": {"slug": "bench", "scan": "gemma-2-2b"}, "qParams": {"supernodes": []}, "nodes": nodes,
            "links": [{"source": s, "target": t, "weight": rng.gauss(0, 1)} for s, t in sorted(pairs)]}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("memory")
    out = {"eap-ig": folder / "ioi_eap-ig.json", "circuit-tracer": folder / "ioi_circuit-tracer.json",
           "catalog-json": folder / "ioi.json", "graphml": folder / "ioi.graphml"}
    circuit = _gpt2_circuit()
    write_circuit(circuit, "eap-ig", out["eap-ig"])
    out["circuit-tracer"].write_text(json.dumps(_attribution_graph()))
    imported = read_circuits(out["eap-ig"], model="gpt2-small")[0]
    write_circuit(imported, "json", out["catalog-json"])
    write_circuit(imported, "graphml", out["graphml"], all_edges=True)
    return out


@pytest.mark.parametrize("fmt", ["eap-ig", "circuit-tracer", "catalog-json", "graphml"])
def test_an_import_holds_at_most_five_times_its_file(files, fmt, tmp_path):
    path = files[fmt]
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}")
    model = "gpt2-small" if fmt == "eap-ig" else None
    # A first import of a small file, so the process's one-time costs (the store's statements,
    # lazily imported modules) are not counted against this file.
    (tmp_path / "small.json").write_text(example_text("catalog-json"), encoding="utf-8")
    import_file(cat, tmp_path / "small.json")
    tracemalloc.start()
    try:
        added = import_file(cat, path, model=model, task="ioi")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    cat.close()
    assert len(added) == 1 and path.stat().st_size > 1_500_000
    assert peak / path.stat().st_size <= BOUND, f"{fmt}: {peak / path.stat().st_size:.1f}x its file"
