"""compare, reuse and find on position-resolved circuits, per role and collapsed to components,
on two small circuits whose overlaps are computed by hand."""

from __future__ import annotations

import pytest

from catalog.errors import InvalidInputError
from catalog.graph import CircuitGraph, ModelShape, Node
from catalog.provenance import Circuit, Provenance
from catalog.queries import compare, find, reuse

SHAPE = ModelShape("toy-2l", n_layers=2, n_heads=2)


def _circuit(task: str, members: dict[str, float], others: dict[str, float]) -> Circuit:
    nodes = [Node.of(k, score=v) for k, v in members.items()]
    nodes += [Node.of(k, score=v, in_circuit=False) for k, v in others.items()]
    return Circuit(CircuitGraph(SHAPE, tuple(nodes)), task, Provenance(source="discovery", method="eap-ig"))


@pytest.fixture
def ids(catalog):
    # ioi: heads at END a1.h0, a1.h1; m0 at S2 and END.  co: heads at END a1.h0; a1.h1 at QOBJ; m0 at QOBJ.
    ioi = _circuit("ioi", {"a1.h0@END": 2.0, "a1.h1@END": 1.0, "m0@S2": 4.0, "m0@END": 1.0}, {"a0.h0@S2": 0.1})
    co = _circuit("co", {"a1.h0@END": 3.0, "a1.h1@QOBJ": 1.0, "m0@QOBJ": 2.0}, {"a0.h0@QOBJ": 0.2})
    return {"ioi": catalog.add(ioi), "co": catalog.add(co)}


def test_compare_per_role_collapsed_and_at_one_role(catalog, ids):
    per_role = compare(catalog, "ioi", "co")
    assert (per_role.nodes.shared, per_role.nodes.size_a, per_role.nodes.size_b) == (1, 4, 3)
    collapsed = compare(catalog, "ioi", "co", collapse_positions=True)
    assert (collapsed.heads.shared, collapsed.heads.jaccard) == (2, 1.0)
    assert {c.id: (c.weight_a, c.weight_b) for c in collapsed.shared}["m0"] == (5.0, 2.0)  # summed over roles
    at_end = compare(catalog, "ioi", "co", role="END")
    assert [c.id for c in at_end.shared] == ["a1.h0@END"]
    assert (at_end.heads.shared, at_end.heads.size_a, at_end.heads.size_b, at_end.heads.jaccard) == (1, 2, 1, 0.5)


def test_compare_refuses_a_role_a_circuit_does_not_have_and_mixed_resolution(catalog, ids):
    with pytest.raises(InvalidInputError, match=r"no role S2\. Its roles: .*QOBJ"):
        compare(catalog, "ioi", "co", role="S2")
    whole = Circuit(CircuitGraph(SHAPE, (Node.of("a1.h0", score=1.0),)), "plain", Provenance(source="import"))
    catalog.add(whole)
    with pytest.raises(InvalidInputError, match="--collapse-positions"):
        compare(catalog, "ioi", "plain")
    assert compare(catalog, "ioi", "plain", collapse_positions=True).heads.shared == 1
    with pytest.raises(InvalidInputError, match="not position-resolved"):
        compare(catalog, "ioi", "plain", role="END")


def test_reuse_per_role_and_collapsed(catalog, ids):
    per_role = reuse(catalog)
    assert {c.component: c.n_tasks for c in per_role.components}["a1.h0@END"] == 2
    assert {c.component: c.n_tasks for c in per_role.components}["m0@S2"] == 1
    collapsed = reuse(catalog, collapse_positions=True)
    counts = {c.component: (c.n_tasks, c.n_circuits) for c in collapsed.components}
    assert counts == {"a1.h0": (2, 2), "a1.h1": (2, 2), "m0": (2, 2)}
    assert collapsed.tasks == ("co", "ioi") and collapsed.jaccard[0][1] == 1.0


def test_find_per_role_and_collapsed(catalog, ids):
    assert [(h.task, h.node_id) for h in find(catalog, "m0@S2")] == [("ioi", "m0@S2")]
    assert sorted(h.node_id for h in find(catalog, "m0")) == ["m0@END", "m0@QOBJ", "m0@S2"]
    hits = {h.task: (h.node_id, h.score) for h in find(catalog, "m0", collapse_positions=True)}
    assert hits == {"ioi": ("m0", 5.0), "co": ("m0", 2.0)}
