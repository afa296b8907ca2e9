"""compare, reuse, find and all-pairs overlap on circuits whose overlaps are computed by hand
(see `hand_circuits` in tests/conftest.py)."""

from __future__ import annotations

import math

import pytest

from catalog.errors import AmbiguousReferenceError, InvalidInputError, NotFoundError
from catalog.graph import CircuitGraph, ModelShape, Node
from catalog.provenance import Circuit, Provenance
from catalog.queries import Reuse, compare, find, pairwise_overlap, reuse, reuse_heatmap


@pytest.fixture
def ids(catalog, hand_circuits):
    return {k: catalog.add(c) for k, c in hand_circuits.items()}


def _fig(o):
    return (o.size_a, o.size_b, o.shared, o.jaccard, o.overlap)


def test_compare_by_hand(catalog, ids):
    c = compare(catalog, "ioi", "gt")
    assert (c.a.id, c.b.id, c.a.task, c.b.model) == (ids["ioi"], ids["gt"], "ioi", "toy-3l")
    assert (c.a.heads, c.a.mlps, c.a.edges, c.b.nodes) == (3, 1, 8, 7)
    assert _fig(c.nodes) == (4, 5, 3, 0.5, 0.75)
    assert _fig(c.heads) == (3, 3, 2, 0.5, 2 / 3)
    assert _fig(c.mlps) == (1, 2, 1, 0.5, 1.0)
    assert _fig(c.edges) == (8, 10, 6, 0.5, 0.75)
    assert c.features is None
    # weights |score|: ioi a0.h0 .9 a1.h1 2 a2.h2 .5 m0 .1; gt a1.h1 1 a2.h2 .5 a2.h3 3 m0 .2 m1 1.5
    assert c.weighted == pytest.approx((1.0 + 0.5 + 0.1) / (0.9 + 2.0 + 0.5 + 0.2 + 3.0 + 1.5))
    assert [s.id for s in c.shared] == ["a1.h1", "a2.h2", "m0"]
    assert (c.shared[0].role_a, c.shared[0].role_b, c.shared[0].weight_a, c.shared[0].weight_b) == \
        ("name mover", None, 2.0, 1.0)
    assert [(s.id, s.role_a) for s in c.only_a] == [("a0.h0", "duplicate token")]
    assert [(s.id, s.role_b) for s in c.only_b] == [("a2.h3", "amplifier"), ("m1", None)]
    assert c.matched is None
    with_io = compare(catalog, ids["ioi"], ids["gt"], include_io=True)
    assert _fig(with_io.nodes)[:4] == (6, 7, 5, 5 / 8)


def test_compare_at_a_matched_size_reselects_from_the_scored_edges(catalog, ids):
    m = compare(catalog, "ioi", "gt", matched_k=2).matched
    assert (m.k, m.unit) == (2, "edges")
    # top-2 edges by |score|: ioi a1.h1->logits (2.0), a2.h3->logits (1.0, scored outside the circuit);
    # gt a2.h3->logits (3.0), m1->logits (1.5)
    assert _fig(m.nodes) == (2, 2, 1, 1 / 3, 0.5)
    assert _fig(m.edges) == (2, 2, 1, 1 / 3, 0.5)
    assert [s.id for s in m.shared] == ["a2.h3"] and [s.id for s in m.only_a] == ["a1.h1"]
    assert m.weighted == pytest.approx(1.0 / (2.0 + 3.0 + 1.5))
    with pytest.raises(InvalidInputError, match="positive"):
        compare(catalog, "ioi", "gt", matched_k=-1)


def test_matched_size_by_components_when_a_side_has_no_scored_edges(catalog):
    shape = ModelShape("heads-only", n_layers=2, n_heads=4)

    def heads(task, scores):
        nodes = tuple(Node.of(h, score=s) for h, s in scores.items())
        return Circuit(CircuitGraph(shape, nodes), task, Provenance(source="published"))

    a = catalog.add(heads("x", {"a0.h0": 3.0, "a0.h1": -2.0, "a1.h0": 1.0}))
    b = catalog.add(heads("y", {"a0.h1": 5.0, "a1.h3": 4.0, "a0.h0": 0.5}))
    c = compare(catalog, a, b, matched_k=2)
    assert _fig(c.nodes) == (3, 3, 2, 0.5, 2 / 3)
    assert c.edges.jaccard is None
    m = c.matched
    assert m.unit == "components"
    assert _fig(m.nodes) == (2, 2, 1, 1 / 3, 0.5)  # {a0.h0, a0.h1} vs {a0.h1, a1.h3}


def test_compare_feature_circuits(catalog):
    shape = ModelShape("feat", n_layers=4, n_heads=2)

    def feats(task, fs):
        ids = ["input@0", *fs, "logits@0"]
        edges = [("input@0", f, None, 1.0) for f in fs] + [(f, "logits@0", None, 0.5) for f in fs]
        return Circuit(CircuitGraph.build(shape, ids, edges), task, Provenance(source="import"))

    a = catalog.add(feats("capitals", ["f0.1@0[clt]", "f1.2@0[clt]", "err3@0[clt]"]))
    b = catalog.add(feats("capitals", ["f0.1@0[clt]", "f2.9@0[clt]"]))
    c = compare(catalog, a, b)
    assert _fig(c.features) == (2, 2, 1, 1 / 3, 0.5)
    assert _fig(c.nodes) == (3, 2, 1, 0.25, 0.5)
    assert c.heads.jaccard is None and c.weighted == pytest.approx(1.0 / 4.0)


def test_compare_references_across_models(catalog, ids, circuit_factory, other_shape):
    other_ioi = catalog.add(circuit_factory("ioi", ["a1.h1"], shape=other_shape))
    assert compare(catalog, "ioi", "gt").a.id == ids["ioi"]  # gt exists on toy-3l only
    with pytest.raises(InvalidInputError, match="different|same model"):
        compare(catalog, other_ioi, ids["gt"])
    catalog.add(circuit_factory("gt", ["a0.h1"], shape=other_shape))
    with pytest.raises(AmbiguousReferenceError, match="toy-3l, toy-other"):
        compare(catalog, "ioi", "gt")
    assert compare(catalog, "ioi", "gt", model="toy-other").a.id == other_ioi
    only_other = catalog.add(circuit_factory("solo", ["a0.h0"], shape=other_shape))
    with pytest.raises(AmbiguousReferenceError, match="No model has circuits for both"):
        compare(catalog, "solo", "ind")
    assert compare(catalog, "solo", str(other_ioi)).a.id == only_other
    with pytest.raises(NotFoundError):
        compare(catalog, "ioi", "nonexistent-task")


def test_reuse_by_hand(catalog, ids):
    r = reuse(catalog)
    assert r.model == "toy-3l" and r.kinds == ("attention", "mlp", "feature", "error")
    assert r.tasks == ("gt", "ind", "ioi") and r.circuits == {"gt": ids["gt"], "ind": ids["ind"], "ioi": ids["ioi"]}
    assert r.sizes == (5, 2, 4)
    assert r.shared == ((5, 1, 3), (1, 2, 1), (3, 1, 4))
    assert r.jaccard[2][0] == 0.5 and r.jaccard[2][1] == pytest.approx(1 / 5) and r.jaccard[0][1] == pytest.approx(1 / 6)
    assert all(r.jaccard[i][i] == 1.0 for i in range(3))
    by_id = {c.component: c for c in r.components}
    assert "input" not in by_id and "logits" not in by_id
    assert by_id["a1.h1"].tasks == ("gt", "ioi") and by_id["a2.h3"].tasks == ("gt", "ind")
    assert by_id["m1"].n_tasks == 1
    assert [c.n_tasks for c in r.components][:5] == [2, 2, 2, 2, 2]
    heads = reuse(catalog, kinds=["attention"])
    assert heads.sizes == (3, 2, 3)


def test_reuse_needs_one_model(catalog, ids, circuit_factory, other_shape):
    catalog.add(circuit_factory("ioi", ["a1.h1"], shape=other_shape))
    with pytest.raises(AmbiguousReferenceError, match="toy-3l \\(3 circuits\\), toy-other \\(1 circuits\\)"):
        reuse(catalog)
    assert reuse(catalog, model="toy-other").tasks == ("ioi",)


def test_reuse_on_an_empty_catalog(catalog):
    with pytest.raises(NotFoundError, match="no circuits"):
        reuse(catalog)


def test_find_reads_peer_spellings(catalog, ids):
    assert [h.circuit_id for h in find(catalog, "A1.1")] == [ids["ioi"], ids["gt"]]
    assert find(catalog, "a1.h1")[0].role == "name mover"
    with pytest.raises(InvalidInputError, match="not a component"):
        find(catalog, "head nine")


def test_pairwise_overlap(catalog, ids):
    m = pairwise_overlap(catalog)
    assert m.ids == (ids["ioi"], ids["gt"], ids["ind"]) and m.tasks == ("ioi", "gt", "ind")
    assert m.sizes.tolist() == [4, 5, 2]
    assert m.shared[0, 1] == 3 and m.jaccard[0, 1] == 0.5 and m.jaccard[0, 2] == pytest.approx(0.2)
    assert m.to_dict()["jaccard"][1][2] == pytest.approx(1 / 6)
    sub = pairwise_overlap(catalog, kinds=["mlp"], circuit_ids=[ids["ioi"], ids["ind"]])
    assert sub.ids == (ids["ioi"], ids["ind"]) and math.isnan(sub.jaccard[1, 1])
    assert sub.to_dict()["jaccard"][1][1] is None


def test_reuse_heatmap_writes_a_png(tmp_path):
    r = Reuse(model="toy-3l", kinds=("attention",), components=(), tasks=("gt", "ioi"), circuits={"gt": 2, "ioi": 1},
              sizes=(3, 3), shared=((3, 2), (2, 3)), jaccard=((1.0, 0.5), (0.5, None)))
    out = reuse_heatmap(r, tmp_path / "plots" / "reuse.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(InvalidInputError, match=".png"):
        reuse_heatmap(r, tmp_path / "reuse.svg")
