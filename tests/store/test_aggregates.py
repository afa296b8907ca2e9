"""SQL aggregates over the hand-made circuits (see `hand_circuits` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from catalog.errors import InvalidInputError, NotFoundError


@pytest.fixture
def filled(catalog, hand_circuits, circuit_factory, other_shape):
    ids = {k: catalog.add(c) for k, c in hand_circuits.items()}
    ids["old-ioi"] = catalog.add(circuit_factory("ioi", ["a0.h3"], name="old"))  # newer than ioi: replaces it
    ids["other"] = catalog.add(circuit_factory("ioi", ["a1.h1"], shape=other_shape))
    return catalog, ids


def test_component_counts(filled):
    cat, ids = filled
    counts = {(c.model, c.component): c for c in cat.component_counts(kinds=["attention", "mlp"])}
    a11 = counts[("toy-3l", "a1.h1")]
    assert (a11.n_tasks, a11.n_circuits, a11.tasks, a11.kind) == (2, 2, ("gt", "ioi"), "attention")
    a23 = counts[("toy-3l", "a2.h3")]  # scored in the ioi circuit but not a member there
    assert (a23.n_tasks, a23.n_circuits, a23.tasks) == (2, 2, ("gt", "ind"))
    assert counts[("toy-3l", "a0.h3")].n_circuits == 1
    assert counts[("toy-other", "a1.h1")].tasks == ("ioi",)
    assert ("toy-3l", "input") not in counts
    only = cat.component_counts(model="toy-3l")
    assert {c.model for c in only} == {"toy-3l"}
    ordered = [(c.n_tasks, c.n_circuits) for c in only]
    assert ordered == sorted(ordered, reverse=True)
    io = {c.component: c for c in only}["input"]
    assert (io.n_tasks, io.n_circuits) == (3, 4)
    with pytest.raises(InvalidInputError, match="Unknown component kind 'head'"):
        cat.component_counts(kinds=["head"])


def test_task_overlap_uses_the_newest_circuit_per_task(filled):
    cat, ids = filled
    ov = cat.task_overlap("toy-3l", kinds=["attention", "mlp"])
    assert ov.tasks == ("gt", "ind", "ioi")
    assert ov.circuits == {"gt": ids["gt"], "ind": ids["ind"], "ioi": ids["old-ioi"]}
    assert ov.sizes == {"gt": 5, "ind": 2, "ioi": 1}
    assert ov.shared["gt"]["ind"] == ov.shared["ind"]["gt"] == 1  # a2.h3
    assert ov.shared["ioi"]["gt"] == 0 and ov.shared["ioi"]["ind"] == 0
    cat.delete(ids["old-ioi"])
    ov = cat.task_overlap("toy-3l", kinds=["attention", "mlp"])
    assert ov.circuits["ioi"] == ids["ioi"]
    assert ov.shared["ioi"]["gt"] == 3 and ov.shared["ioi"]["ind"] == 1 and ov.sizes["ioi"] == 4
    everything = cat.task_overlap("toy-3l")
    assert everything.shared["ioi"]["gt"] == 5  # input and logits too
    with pytest.raises(NotFoundError, match="toy-3l, toy-other"):
        cat.task_overlap("gpt2-small")


def test_find_with_roles_scores_and_positions(filled, circuit_factory):
    cat, ids = filled
    hits = cat.find("a1.h1")
    assert [(h.circuit_id, h.task, h.model) for h in hits] == \
        [(ids["ioi"], "ioi", "toy-3l"), (ids["gt"], "gt", "toy-3l"), (ids["other"], "ioi", "toy-other")]
    assert (hits[0].role, hits[0].score, hits[0].circuit_name) == ("name mover", 2.0, "ioi-toy")
    assert hits[1].role is None and hits[1].score == 1.0
    assert [h.circuit_id for h in cat.find("a1.h1", model="toy-other")] == [ids["other"]]
    assert [h.circuit_id for h in cat.find("a2.h3")] == [ids["gt"], ids["ind"]]  # not ioi: scored only
    assert [h.circuit_id for h in cat.find("L2H3")] == [ids["gt"], ids["ind"]]  # peer spelling
    assert cat.find("m2") == []


def test_find_matches_feature_positions_unless_one_is_given(catalog):
    from catalog.graph import CircuitGraph, ModelShape
    from catalog.provenance import Circuit, Provenance

    shape = ModelShape("feat", n_layers=4, n_heads=2)
    graph = CircuitGraph.build(shape, ["input@0", "input@1", "f1.7@0[clt]", "f1.7@1[clt]", "logits@1"],
                               [("input@0", "f1.7@0[clt]", None, 1.0), ("input@1", "f1.7@1[clt]", None, 1.0),
                                ("f1.7@0[clt]", "logits@1", None, 0.5), ("f1.7@1[clt]", "logits@1", None, 0.25)])
    cid = catalog.add(Circuit(graph, "capitals", Provenance(source="import")))
    assert [h.node_id for h in catalog.find("f1.7[clt]")] == ["f1.7@0[clt]", "f1.7@1[clt]"]
    assert [h.node_id for h in catalog.find("f1.7@1[clt]")] == ["f1.7@1[clt]"]
    assert [h.node_id for h in catalog.find("f1.7")] == ["f1.7@0[clt]", "f1.7@1[clt]"]
    assert catalog.find("f1.7[other]") == [] and all(h.circuit_id == cid for h in catalog.find("f1.7"))


def test_membership(filled):
    cat, ids = filled
    m = cat.membership(model="toy-3l", kinds=["attention", "mlp"])
    assert m.circuits[ids["ioi"]] == {"a0.h0", "a1.h1", "a2.h2", "m0"}
    assert m.circuits[ids["gt"]] == {"a1.h1", "a2.h2", "a2.h3", "m0", "m1"}
    assert set(m.circuits) == {ids["ioi"], ids["gt"], ids["ind"], ids["old-ioi"]}
    assert m.tasks[ids["gt"]] == "gt"
    some = cat.membership(circuit_ids=[ids["ind"], ids["other"]])
    assert some.circuits == {ids["ind"]: {"input", "a0.h0", "a2.h3", "logits"}, ids["other"]: {"input", "a1.h1", "logits"}}
