"""Feature circuits compared across tasks (`catalog.queries.features`, `compare`, `reuse --features`),
on hand-built feature circuits whose overlaps are worked out below.

    ioi feature circuit:  f0.1@END 0.4 "names"   f1.2@END 0.3   f1.2@S2 0.1   f2.3@S2 0.2  (err0@END 0.5)
    co  feature circuit:  f0.1@END 0.2 "names"   f1.2@QOBJ 0.3  f2.5@END 0.5

Per role: shared {f0.1@END}; Jaccard 1/6; weighted min 0.2 / max (0.4+0.3+0.1+0.2+0.3+0.5)=1.8.
Collapsed: ioi f0.1 0.4, f1.2 0.4, f2.3 0.2; co f0.1 0.2, f1.2 0.3, f2.5 0.5: shared {f0.1, f1.2};
Jaccard 2/4; weighted (0.2 + 0.3) / (0.4 + 0.4 + 0.2 + 0.5) = 0.5 / 1.5.
"""

from __future__ import annotations

import pytest

from catalog.errors import InvalidInputError, NotFoundError
from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, ModelShape, Node
from catalog.provenance import PART_TAG, Ablation, Circuit, Provenance, Selection, Source
from catalog.queries import compare, feature_overlap, feature_reuse, pairwise_overlap, prompt_graph_id, reuse

SHAPE = ModelShape("toy-3l", n_layers=3, n_heads=4, d_model=16)


def feature_circuit(task: str, scores: dict[str, float], labels: dict[str, str] = (), *,
                    errors: dict[str, float] = (), tags: tuple[str, ...] = ()) -> Circuit:
    labels, errors = dict(labels), dict(errors)
    nodes = [Node.of("input@END"), Node.of("logits@END")]
    nodes += [Node.of(i, score=s) for i, s in {**scores, **errors}.items()]
    edges = [Edge(i, "logits@END", None, s) for i, s in {**scores, **errors}.items()]
    edges += [Edge("input@END", i, None, 1.0) for i in {**scores, **errors}]
    anns = tuple(Annotation(AnnotationKind.LABEL, text, node=i) for i, text in labels.items())
    values = {i: {"influence": s, "fraction": 0.5} for i, s in scores.items()}
    prov = Provenance(source=Source.DISCOVERY, method="attribution-graph", metric="logit_diff",
                      method_params={"attribution": {"nodes": values}}, dataset_size=16, seed=0,
                      ablation=Ablation.COUNTERFACTUAL, selection=Selection(rule="given"))
    return Circuit(CircuitGraph(SHAPE, tuple(nodes), tuple(edges), anns), task, prov, tags=tags)


def head_circuit(task: str, heads: dict[str, float]) -> Circuit:
    g = CircuitGraph.build(SHAPE, ["input", *heads, "logits"],
                           [e for h, s in heads.items() for e in (("input", h, "v", 1.0), (h, "logits", None, s))],
                           node_scores=heads)
    prov = Provenance(source=Source.DISCOVERY, method="eap-ig", selection=Selection(rule="top-k", value=4))
    return Circuit(g, task, prov)


IOI = {"f0.1@END[tc]": 0.4, "f1.2@END[tc]": 0.3, "f1.2@S2[tc]": 0.1, "f2.3@S2[tc]": 0.2}
CO = {"f0.1@END[tc]": 0.2, "f1.2@QOBJ[tc]": 0.3, "f2.5@END[tc]": 0.5}


@pytest.fixture
def ioi_co():
    a = feature_circuit("ioi", IOI, {"f0.1@END[tc]": "names"}, errors={"err0@END[tc]": 0.5})
    b = feature_circuit("colored-objects", CO, {"f0.1@END[tc]": "names"})
    return a, b


def test_per_role_overlap_counts_and_weights_by_influence(ioi_co):
    a, b = ioi_co
    f = feature_overlap(a, b)
    assert (f.counts.shared, f.counts.size_a, f.counts.size_b) == (1, 4, 3)
    assert f.counts.jaccard == pytest.approx(1 / 6)
    assert f.weighted == pytest.approx(0.2 / 1.8)
    assert f.shared_mass_a == pytest.approx(0.4 / 1.0) and f.shared_mass_b == pytest.approx(0.2 / 1.0)
    (shared,) = f.shared
    assert (shared.id, shared.label, shared.influence_a, shared.influence_b) == ("f0.1@END[tc]", "names", 0.4, 0.2)
    assert shared.fraction_a == 0.5
    assert [w.id for w in f.only_a] == ["f1.2@END[tc]", "f2.3@S2[tc]", "f1.2@S2[tc]"]  # by influence
    assert "err0@END[tc]" not in {w.id for w in f.only_a}  # error nodes are not features


def test_collapsed_overlap_sums_a_features_influence_over_its_roles(ioi_co):
    a, b = ioi_co
    f = feature_overlap(a, b, collapse_positions=True)
    assert {w.id for w in f.shared} == {"f0.1[tc]", "f1.2[tc]"}
    assert f.counts.jaccard == pytest.approx(2 / 4)
    assert f.weighted == pytest.approx(0.5 / 1.5)
    by_id = {w.id: w for w in f.shared}
    assert by_id["f1.2[tc]"].influence_a == pytest.approx(0.4)  # 0.3 at END + 0.1 at S2
    assert by_id["f0.1[tc]"].label == "names" and by_id["f0.1[tc]"].fraction_a is None


def test_identical_circuits_overlap_fully_and_one_role_can_be_kept(ioi_co):
    a, _ = ioi_co
    f = feature_overlap(a, a)
    assert f.weighted == pytest.approx(1.0) and f.counts.jaccard == 1.0
    at_s2 = feature_overlap(a, a, role="S2")
    assert {w.id for w in at_s2.shared} == {"f1.2@S2[tc]", "f2.3@S2[tc]"}


def test_a_head_circuit_where_a_feature_circuit_is_expected_is_refused(ioi_co):
    a, _ = ioi_co
    heads = head_circuit("ioi", {"a0.h1": 1.0})
    with pytest.raises(InvalidInputError, match="holds no features.*attribution-graph --task ioi"):
        feature_overlap(a, heads)


def test_compare_adds_the_feature_level_and_the_head_level_beside_it(catalog, ioi_co):
    a, b = ioi_co
    ha, hb = head_circuit("ioi", {"a0.h1": 1.0, "a1.h0": 2.0}), head_circuit("colored-objects", {"a1.h0": 1.0})
    ida, idb = catalog.add(a), catalog.add(b)
    r = compare(catalog, ida, idb)
    assert r.feature_level is not None and r.feature_level.weighted == pytest.approx(0.2 / 1.8)
    assert r.head_level is not None and r.head_level.missing == ("ioi", "colored-objects")
    hida, hidb = catalog.add(ha), catalog.add(hb)
    r = compare(catalog, ida, idb, collapse_positions=True)
    assert r.feature_level.weighted == pytest.approx(0.5 / 1.5)
    h = r.head_level
    assert (h.a.id, h.b.id) == (hida, hidb) and h.shared == ("a1.h0",)
    assert h.heads.jaccard == pytest.approx(1 / 2)
    assert h.weighted == pytest.approx(1.0 / 3.0)  # min(2, 1) / (max(2, 1) + 1)
    # a head circuit against a feature circuit: compared as before, no feature level
    plain = compare(catalog, hida, idb, collapse_positions=True)
    assert plain.feature_level is None and plain.head_level is None


def test_feature_reuse_matrices_with_the_head_level(catalog, ioi_co):
    a, b = ioi_co
    catalog.add(a)
    catalog.add(b)
    catalog.add(feature_circuit("ioi", {"f2.9@END[tc]": 1.0}, tags=(PART_TAG,)))  # a prompt graph: ignored
    catalog.add(head_circuit("ioi", {"a0.h1": 1.0}))
    r = feature_reuse(catalog, collapse_positions=True)
    assert r.tasks == ("colored-objects", "ioi")
    assert r.shared[0][1] == 2 and r.sizes == (3, 3)
    assert r.weighted[0][1] == pytest.approx(0.5 / 1.5) and r.weighted[1][1] == pytest.approx(1.0)
    assert list(r.head_circuits) == ["ioi"] and r.head_jaccard[0][1] is None and r.head_jaccard[1][1] == 1.0
    top = r.features[0]
    assert top.n_tasks == 2 and top.feature == "f1.2[tc]"  # 2 tasks, most influence (0.4 + 0.3)
    assert top.influence == {"colored-objects": pytest.approx(0.3), "ioi": pytest.approx(0.4)}


def test_component_reuse_counts_a_feature_circuit_once_not_its_prompt_graphs(catalog, ioi_co):
    a, b = ioi_co
    ids = [catalog.add(feature_circuit("ioi", IOI, tags=(PART_TAG,))) for _ in range(3)]  # prompt graphs
    ids += [catalog.add(a), catalog.add(b)]
    counts = {c.component: c for c in reuse(catalog, kinds=["feature"]).components}
    assert counts["f0.1@END[tc]"].n_circuits == 2 and counts["f0.1@END[tc]"].n_tasks == 2
    assert counts["f2.3@S2[tc]"].n_circuits == 1
    collapsed = {c.component: c for c in reuse(catalog, kinds=["feature"], collapse_positions=True).components}
    assert collapsed["f1.2[tc]"].n_circuits == 2
    assert pairwise_overlap(catalog, kinds=["feature"]).ids == tuple(ids[3:])


def test_feature_reuse_without_feature_circuits_says_how_to_get_them(catalog):
    catalog.add(head_circuit("ioi", {"a0.h1": 1.0}))
    with pytest.raises(NotFoundError, match="attribution-graph"):
        feature_reuse(catalog)


def test_a_prompt_graph_is_found_by_its_index_and_bad_indices_say_the_range(catalog):
    with pytest.raises(InvalidInputError, match="stores no per-prompt graphs"):
        prompt_graph_id(catalog, catalog.add(head_circuit("ioi", {"a0.h1": 1.0})), 0)
