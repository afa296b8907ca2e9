"""Property: any valid circuit (heads, MLPs, features with positions, tokens, annotations, any
finite scores, tags, metrics) reads back from the store exactly as it was added."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.errors import InvalidInputError
from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, ModelShape, Node
from catalog.naming import NodeKind, forward_rank
from catalog.provenance import Circuit, Provenance, Selection

SHAPE = ModelShape("prop", n_layers=3, n_heads=3, d_model=12)
POOL = ["input", "logits", "a0.h0", "a0.h2", "a1.h1", "a2.h0", "a2.h2", "m0", "m1", "m2",
        "input@0", "input@2", "f0.5@0[tc]", "f1.99@1[tc]", "f2.7@2[tc]", "err1@1[tc]", "logits.t42@2", "a1.h0@1"]
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1, max_size=12)
SCORE = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64))
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), TEXT,
                              st.floats(allow_nan=False, allow_infinity=False)),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)


@st.composite
def circuits(draw: st.DrawFn) -> Circuit:
    ids = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=10, unique=True))
    nodes = [replace(Node.of(i, score=draw(SCORE), in_circuit=draw(st.booleans())),
                     token=draw(st.none() | st.integers(0, 50_000)) if i.startswith("input") else Node.of(i).token)
             for i in ids]
    rank = {n.id: forward_rank(n.component) for n in nodes}
    pos = {n.id: n.position for n in nodes}
    kinds = {n.id: n.kind for n in nodes}
    candidates = [(a, b, q) for a in ids for b in ids if rank[a] < rank[b]
                  and not (pos[a] is not None and pos[b] is not None and pos[a] > pos[b])
                  for q in (("q", "k", "v") if kinds[b] is NodeKind.ATTENTION else (None,))]
    chosen = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=15)) if candidates else []
    edges = [Edge(a, b, q, draw(SCORE), draw(st.booleans())) for a, b, q in chosen]
    anns = draw(st.lists(st.builds(
        lambda kind, value, node, members: Annotation(kind, value, node, tuple(members) if kind is AnnotationKind.GROUP else ()),
        st.sampled_from(list(AnnotationKind)), TEXT, st.none() | st.sampled_from(ids),
        st.lists(st.sampled_from(ids), max_size=3)), max_size=4))
    prov = Provenance(
        source=draw(st.sampled_from(["discovery", "import", "published"])), method=draw(st.none() | TEXT),
        method_params=draw(st.dictionaries(TEXT, JSON, max_size=3)), seed=draw(st.none() | st.integers(-2**63, 2**63 - 1)),
        selection=draw(st.none() | st.builds(Selection, rule=st.sampled_from(["top-k", "threshold", "given"]),
                                             value=st.none() | st.floats(0, 1e6), absolute=st.booleans())),
        created_at=draw(st.datetimes(min_value=datetime(1970, 1, 2), timezones=st.just(timezone.utc))),
        library_versions={"python": "3.11"}, notes=draw(st.none() | TEXT),
    )
    return Circuit(CircuitGraph(SHAPE, tuple(nodes), tuple(edges), tuple(anns)), task=draw(TEXT.filter(str.strip)).strip(),
                   provenance=prov, name=draw(st.none() | TEXT), tags=tuple(draw(st.lists(TEXT.filter(str.strip), max_size=3))),
                   metrics=draw(st.dictionaries(TEXT, JSON, max_size=3)))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(circuit=circuits())
def test_any_circuit_round_trips(catalog, circuit):
    cid = catalog.add(circuit)
    assert catalog.get(cid) == replace(circuit, id=cid)


def test_nul_characters_are_refused_before_anything_is_written(catalog, circuit_factory):
    for bad in (replace(circuit_factory("ioi", ["a0.h0"]), name="a\x00b"),
                replace(circuit_factory("ioi", ["a0.h0"]), tags=("ok", "no\x00pe")),
                replace(circuit_factory("io\x00i", ["a0.h0"]))):
        with pytest.raises(InvalidInputError, match="NUL"):
            catalog.add(bad)
    assert catalog.circuits() == [] and catalog.models() == []
