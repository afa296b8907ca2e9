"""CircuitGraph invariants and operations, on graphs small enough to check by hand."""

from __future__ import annotations

import math

import pytest

from catalog.errors import InvalidGraphError, InvalidInputError
from catalog.graph import Annotation, AnnotationKind, CircuitGraph, Edge, ModelShape, Node
from catalog.naming import QKV, NodeKind

TOY = ModelShape("toy", n_layers=2, n_heads=2, d_model=16)


def toy_graph() -> CircuitGraph:
    return CircuitGraph.build(
        TOY,
        ["input", "a0.h0", "a0.h1", "m0", "a1.h0", "m1", "logits"],
        [
            ("input", "a0.h0", "v", 0.3),
            ("input", "a0.h1", "q", 0.02),
            ("a0.h0", "m0", None, 0.15),
            ("m0", "a1.h0", "k", -0.27),
            ("a1.h0", "logits", None, 0.9),
            ("a0.h1", "m1", None, 0.01),
            ("m1", "logits", None, 0.005),
        ],
    )


def test_build_and_accessors() -> None:
    g = toy_graph()
    assert g.heads == {"a0.h0", "a0.h1", "a1.h0"}
    assert g.mlps == {"m0", "m1"}
    assert g.summary()["edges"] == 7
    assert [n.id for n in g.nodes][0] == "input" and g.nodes[-1].id == "logits"


def test_equality_ignores_construction_order() -> None:
    g = toy_graph()
    shuffled = CircuitGraph(TOY, tuple(reversed(g.nodes)), tuple(reversed(g.edges)))
    assert shuffled == g


@pytest.mark.parametrize(
    "nodes, edges, message",
    [
        (["input", "a2.h0"], [], "layer 2 is out of range"),
        (["input", "a0.h2"], [], "head 2 is out of range"),
        (["input", "m5"], [], "layer 5 is out of range"),
        (["input", "a0.h0"], [("input", "a0.h1", "q", 1.0)], "not in the graph"),
        (["input", "a0.h0"], [("input", "a0.h0", None, 1.0)], "names no q, k or v"),
        (["input", "m0"], [("input", "m0", "q", 1.0)], "not an attention head"),
        (["m0", "a0.h0"], [("m0", "a0.h0", "q", 1.0)], "goes backwards"),
        (["input", "m0"], [("input", "m0", None, math.nan)], "finite"),
        (["input", "m0"], [("input", "m0", None, math.inf)], "finite"),
        (["input", "m0"], [("input", "m0", None, 1.0), ("input", "m0", None, 2.0)], "appears twice"),
        (["input", "m0"], [("input", "m0", None, "big")], "non-numeric"),
    ],
)
def test_invalid_graphs_are_refused(nodes: list[str], edges: list, message: str) -> None:
    with pytest.raises(InvalidGraphError, match=message):
        CircuitGraph.build(TOY, nodes, edges)


def test_duplicate_node_and_dangling_annotation() -> None:
    with pytest.raises(InvalidGraphError, match="appears twice"):
        CircuitGraph(TOY, (Node.of("m0"), Node.of("m0")))
    with pytest.raises(InvalidGraphError, match="refers to node a1.h1"):
        CircuitGraph(TOY, (Node.of("m0"),), (), (Annotation(AnnotationKind.ROLE, "mover", node="a1.h1"),))


def test_positions_cannot_flow_backwards() -> None:
    with pytest.raises(InvalidGraphError, match="position 3 back to position 1"):
        CircuitGraph.build(TOY, ["input@3", "f0.7@1[d]"], [("input@3", "f0.7@1[d]", None, 1.0)])


def test_model_shape_validation() -> None:
    with pytest.raises(InvalidGraphError):
        ModelShape("x", n_layers=0, n_heads=1)
    with pytest.raises(InvalidGraphError):
        ModelShape("", n_layers=1, n_heads=1)


def test_top_k_and_threshold_select_by_magnitude() -> None:
    g = toy_graph()
    top2 = g.top_k(2)
    assert {e.id for e in top2.circuit_edges} == {"a1.h0->logits", "input->a0.h0<v>"}
    assert len(top2.edges) == len(g.edges), "the full scored edge list is kept"
    signed = g.top_k(3, absolute=False)
    assert "m0->a1.h0<k>" not in {e.id for e in signed.circuit_edges}
    thr = g.threshold(0.2)
    assert {e.id for e in thr.circuit_edges} == {"a1.h0->logits", "input->a0.h0<v>", "m0->a1.h0<k>"}
    assert thr.component_ids() == {"input", "a0.h0", "m0", "a1.h0", "logits"}
    with pytest.raises(InvalidInputError):
        g.top_k(-1)


def test_prune_dangling_keeps_only_input_to_logits_paths() -> None:
    g = toy_graph().threshold(0.1)  # input->a0.h0, a0.h0->m0, m0->a1.h0, a1.h0->logits, ...
    assert g.prune_dangling().circuit_edges == g.circuit_edges
    # drop the first hop: nothing reaches logits from input any more
    broken = g.with_selection(e.key for e in g.circuit_edges if e.src != "input")
    assert broken.prune_dangling().circuit_edges == ()
    # a side branch that does not reach logits is removed
    side = g.with_selection([*(e.key for e in g.circuit_edges), ("input", "a0.h1", "q")])
    pruned = side.prune_dangling()
    assert "a0.h1" not in pruned.component_ids()
    assert pruned.circuit().edges == g.circuit().edges


def test_restrict_and_circuit() -> None:
    g = toy_graph()
    r = g.restrict_to(["input", "a0.h0", "m0"])
    assert {e.id for e in r.edges} == {"input->a0.h0<v>", "a0.h0->m0"}
    with pytest.raises(InvalidInputError, match="Not in this graph"):
        g.restrict_to(["a9.h9"])
    c = g.top_k(1).circuit()
    assert [n.id for n in c.nodes] == ["a1.h0", "logits"] and len(c.edges) == 1


def test_roles_labels_and_networkx() -> None:
    anns = (Annotation(AnnotationKind.ROLE, "name mover", node="a1.h0"),
            Annotation(AnnotationKind.LABEL, "moves names", node="a1.h0"),
            Annotation(AnnotationKind.GROUP, "early", members=("a0.h0", "m0")))
    g = CircuitGraph(TOY, toy_graph().nodes, toy_graph().edges, anns)
    assert g.roles() == {"a1.h0": "name mover"} and g.labels() == {"a1.h0": "moves names"}
    nxg = g.to_networkx()
    assert nxg.nodes["a1.h0"]["role"] == "name mover"
    assert nxg.number_of_edges() == 7
    assert nxg.nodes["m0"]["kind"] == NodeKind.MLP.value


def test_nodes_and_edges_are_frozen() -> None:
    e = Edge("input", "m0", None, 1.0)
    with pytest.raises(AttributeError):
        e.score = 2.0  # type: ignore[misc]
    assert Edge("input", "a0.h0", QKV.Q).id == "input->a0.h0<q>"


def test_attention_patterns_are_validated():
    import pytest
    from pydantic import ValidationError

    from catalog.attention import AttentionPatterns, PromptAttention

    ok = {"prompt": "a b", "tokens": ("a", "b"), "read_position": 1}
    PromptAttention(**ok, heads={"a0.h0": ((1.0, 0.0), (0.5, 0.5))})
    for heads in ({"a0.h0": ((1.0, 0.0),)},  # not square
                  {"a0.h0": ((1.0, 0.0), (2.0, 0.5))},  # weight outside [0, 1]
                  {"a0.h0": ((1.0, 0.0), (float("nan"), 0.5))},
                  {"m0": ((1.0, 0.0), (0.5, 0.5))}):  # not a head
        with pytest.raises(ValidationError):
            PromptAttention(**ok, heads=heads)
    with pytest.raises(ValidationError):
        PromptAttention(**{**ok, "read_position": 2}, heads={})
    with pytest.raises(ValidationError):  # a prompt missing one of the heads
        AttentionPatterns(heads=("a0.h0", "a0.h1"),
                          prompts=(PromptAttention(**ok, heads={"a0.h0": ((1.0, 0.0), (0.5, 0.5))}),))
