"""The five real peer files in ../shared/fixtures/peer-formats import with their documented counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import FormatError
from catalog.formats import read_circuits, write_circuit
from catalog.naming import NodeKind
from catalog.provenance import SelectionRule, Source

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "peer-formats"


@pytest.fixture(scope="module")
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/peer-formats not found: clone next to the shared folder to run this test")
    return FIXTURES


@pytest.fixture(scope="module")
def mib_ioi(fixtures):
    return read_circuits(fixtures / "eap-ig_mib-example_ioi_gpt2-small.json.gz")[0]


def test_mib_example_current_schema(mib_ioi):
    c = mib_ioi
    assert (c.model, c.task) == ("gpt2-small", "ioi")
    s = c.graph.summary()
    assert len(c.graph.nodes) == 158 and s["scored_edges"] == 32_491
    assert (s["edges"], s["nodes"], s["heads"]) == (756, 81, 67)
    assert c.provenance.source is Source.IMPORT and c.provenance.source_format == "eap-ig"
    assert c.provenance.selection.rule is SelectionRule.GIVEN
    assert c.provenance.source_sha256 == "4b392b7019ad8f695e5caa0503fcae4b811770efb8eb0a44b650ecea592dcf20"
    assert all(e.score is not None for e in c.graph.edges)


def test_legacy_greater_than_manual_circuit(fixtures):
    c = read_circuits(fixtures / "eap-ig-legacy_greater-than_gpt2-small_manual.json.gz")[0]
    assert (c.model, c.task) == ("gpt2-small", "greater-than")
    assert c.provenance.method_params["schema"] == "legacy"
    assert c.graph.summary()["scored_edges"] == 32_491 and len(c.graph.circuit_edges) == 240
    assert sorted(n.id for n in c.graph.circuit_nodes) == sorted([
        "input", "a0.h1", "a0.h3", "a0.h5", "m0", "m1", "m2", "m3", "a5.h1", "a5.h5", "a6.h1",
        "a6.h9", "a7.h10", "a8.h8", "a8.h11", "m8", "a9.h1", "m9", "m10", "m11", "logits"])


def test_ugs_importance_file_is_selected_by_top_k(fixtures):
    c = read_circuits(fixtures / "eap-ig_ugs_ioi_interpbench.json")[0]
    assert (c.model, c.task) == ("interpbench-ioi", "ioi")
    assert len(c.graph.nodes) == 32 and len(c.graph.edges) == 1_108
    sel = c.provenance.selection
    assert sel.rule is SelectionRule.TOP_K and sel.value == 23 and len(c.graph.circuit_edges) == 23
    cutoff = min(abs(e.score) for e in c.graph.circuit_edges)
    assert all(abs(e.score) <= cutoff for e in c.graph.edges if not e.in_circuit)


def test_local_circuit_tracer_graph(fixtures):
    c = read_circuits(fixtures / "circuit-tracer_dallas-austin_gemma-2-2b.json", task="state-capital")[0]
    g = c.graph
    assert (c.model, c.name) == ("gemma-2-2b", "dallas-austin-llamma")
    kinds = [n.kind for n in g.nodes]
    assert (kinds.count(NodeKind.FEATURE), kinds.count(NodeKind.INPUT), kinds.count(NodeKind.LOGITS)) == (40, 10, 10)
    assert len(g.edges) == 330
    # node 18_5495_9 has feature 15204836 = Cantor(18, 5495)
    assert "f18.5495@9[gemma-scope-transcoders]" in g
    austin = g.labels()["logits.t22605@9"]
    assert austin.startswith('Output " Austin"')


def test_neuronpedia_graph_with_error_nodes(fixtures):
    c = read_circuits(fixtures / "neuronpedia-circuit-tracer_son-clt-hp_gemma-2-2b.json", task="analogy")[0]
    g = c.graph
    kinds = [n.kind for n in g.nodes]
    assert len(g.nodes) == 542 and len(g.edges) == 3_136
    assert (kinds.count(NodeKind.FEATURE), kinds.count(NodeKind.ERROR), kinds.count(NodeKind.INPUT),
            kinds.count(NodeKind.LOGITS)) == (395, 133, 13, 1)
    assert {n.dictionary for n in g.nodes if n.kind is NodeKind.FEATURE} == {"clt-gemma-2-2b-2.5M"}
    p = c.provenance.method_params
    assert p["transcoder_set"] == "mntss/clt-gemma-2-2b-2.5M" and p["edge_threshold"] == 0.85


@pytest.mark.slow
def test_mib_example_survives_every_writer(mib_ioi, tmp_path):
    for fmt in ("json", "graphml"):
        write_circuit(mib_ioi, fmt, tmp_path / f"c.{fmt}.gz", all_edges=True)
        back = read_circuits(tmp_path / f"c.{fmt}.gz")[0]
        assert back.graph == mib_ioi.graph and back.provenance == mib_ioi.provenance
    write_circuit(mib_ioi, "eap-ig", tmp_path / "ioi.json")
    back = read_circuits(tmp_path / "ioi.json")[0]
    assert back.graph == mib_ioi.graph


def test_import_into_a_catalog_and_failure_leaves_it_unchanged(fixtures, tmp_path):
    from catalog.formats import import_file
    from catalog.store import Catalog

    cat = Catalog.open(str(tmp_path / "c.db"))
    ids = [a.id for a in import_file(cat, fixtures / "eap-ig_ugs_ioi_interpbench.json", tags=("mib",))]
    ids += [a.id for a in import_file(cat, fixtures / "circuit-tracer_dallas-austin_gemma-2-2b.json",
                                      task="state-capital")]
    before = [(r.id, r.n_edges) for r in cat.circuits()]
    assert len(before) == 2
    got = cat.get(ids[0])
    assert got.tags == ("mib",) and got.graph.summary()["scored_edges"] == 1_108
    with pytest.raises(FormatError, match="out of range for gpt2-small"):
        import_file(cat, fixtures / "circuit-tracer_dallas-austin_gemma-2-2b.json", model="gpt2-small")
    assert [(r.id, r.n_edges) for r in cat.circuits()] == before
