"""Greedy selection and the checks that keep an empty or cut-off circuit from being stored silently,
on a small graph whose selections are worked out by hand."""

from __future__ import annotations

import pytest

from catalog.discovery import select
from catalog.discovery.selection import check_selected, greedy
from catalog.errors import DiscoveryError
from catalog.graph import CircuitGraph, ModelShape
from catalog.provenance import Selection

SHAPE = ModelShape("toy", n_layers=2, n_heads=1)


@pytest.fixture
def graph() -> CircuitGraph:
    """The two best edges, input->a0.h0<q> (8) and a0.h0->a1.h0<v> (9), lead nowhere near the
    logits (a1.h0->logits scores 0.1): top-k 2 keeps nothing on an input->logits path."""
    edges = [
        ("input", "a0.h0", "q", 8.0), ("a0.h0", "a1.h0", "v", 9.0), ("a1.h0", "logits", None, 0.1),
        ("m1", "logits", None, -3.0), ("m0", "logits", None, 2.0), ("input", "logits", None, 0.5),
        ("a0.h0", "logits", None, 0.2), ("input", "m1", None, 1.0), ("m0", "m1", None, 0.2),
        ("a1.h0", "m1", None, 0.3), ("input", "m0", None, 0.4), ("a0.h0", "m0", None, 0.6),
    ]
    nodes = ["input", "a0.h0", "m0", "a1.h0", "m1", "logits"]
    return CircuitGraph.build(SHAPE, nodes, edges)


def _kept(g: CircuitGraph) -> set[tuple[str, str, str]]:
    return {e.key for e in g.edges if e.in_circuit}


def test_top_k_can_leave_nothing_and_that_is_refused_with_what_to_pass(graph):
    sel = Selection(rule="top-k", value=2)
    chosen = select(graph, sel)
    assert _kept(chosen) == set()
    with pytest.raises(DiscoveryError, match="empty circuit.*--greedy"):
        check_selected(graph, chosen, sel)


def test_greedy_grows_from_the_logits_then_joins_every_node_to_input(graph):
    # grown: m1->logits (|-3|), then m0->logits (2); joined: m0 <- its best edge from input,
    # a0.h0 being unreached (input->m0 0.4); m1 <- best of input->m1 1.0 and m0->m1 0.2.
    chosen = select(graph, Selection(rule="top-k", value=2, greedy=True))
    assert _kept(chosen) == {("m1", "logits", ""), ("m0", "logits", ""), ("input", "m0", ""),
                             ("input", "m1", "")}
    assert check_selected(graph, chosen, Selection(rule="top-k", value=2, greedy=True)) == []


def test_signed_greedy_skips_negative_edges(graph):
    chosen = greedy(graph, 1, absolute=False)
    assert _kept(chosen) == {("m0", "logits", ""), ("input", "m0", "")}


def test_a_top_k_that_drops_dangling_edges_says_so(graph):
    # the 8 best: 9, 8, -3, 2, 1, 0.6, 0.5, 0.4; only a0.h0->a1.h0<v> reaches no logits
    sel = Selection(rule="top-k", value=8)
    chosen = select(graph, sel)
    assert len(_kept(chosen)) == 7 and ("a0.h0", "a1.h0", "v") not in _kept(chosen)
    [warning] = check_selected(graph, chosen, sel)
    assert "1 of the 8 selected edges" in warning and "keeps 7" in warning and "--greedy" in warning


def test_greedy_goes_with_top_k_only():
    with pytest.raises(ValueError, match="greedy selection goes with the top-k rule"):
        Selection(rule="threshold", value=0.5, greedy=True)
