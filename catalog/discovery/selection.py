"""Choosing the stored circuit from a scored graph: top-k, threshold, or a target faithfulness.

Edge-level graphs are cut by edge score, then dangling edges (on no input->logits path) are
pruned. Position-resolved graphs (scored ``a1.h0@END`` nodes, no edges) are cut by node score. Node-level graphs (activation patching: node scores, unscored edges) are cut by node
score over heads and MLPs; the circuit is then every edge among the kept components, ``input``
and ``logits``. The full scored graph is kept either way; only the ``in_circuit`` flags change.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from catalog.errors import InvalidInputError
from catalog.graph import CircuitGraph
from catalog.naming import NodeKind
from catalog.provenance import Selection, SelectionRule

if TYPE_CHECKING:
    from catalog.discovery.evaluation import Evaluator

_COMPONENT_KINDS = (NodeKind.ATTENTION, NodeKind.MLP)


def is_node_level(graph: CircuitGraph) -> bool:
    """True when the scores live on nodes only (no edge carries a score)."""
    return all(e.score is None for e in graph.edges) and any(n.score is not None for n in graph.nodes)


def n_candidates(graph: CircuitGraph) -> int:
    """How many items selection ranks: scored edges, or scored components for node-level graphs."""
    if is_node_level(graph):
        return sum(1 for n in graph.nodes if n.kind in _COMPONENT_KINDS and n.score is not None)
    return sum(1 for e in graph.edges if e.score is not None)


def _keep_nodes(graph: CircuitGraph, keep: set[str]) -> CircuitGraph:
    if not graph.edges:
        # A position-resolved graph (nodes such as a1.h0@END, no edges): the kept nodes are the circuit.
        return CircuitGraph(graph.shape, tuple(replace(n, in_circuit=n.id in keep) for n in graph.nodes),
                            (), graph.annotations)
    ends = {n.id for n in graph.nodes if n.kind in (NodeKind.INPUT, NodeKind.LOGITS)}
    alive = keep | ends
    chosen = graph.with_selection(e.key for e in graph.edges if e.src in alive and e.dst in alive)
    return chosen.prune_dangling()


def _ranked_components(graph: CircuitGraph, absolute: bool) -> list[tuple[float, str]]:
    items = [((abs(n.score) if absolute else n.score), n.id) for n in graph.nodes
             if n.kind in _COMPONENT_KINDS and n.score is not None]
    return sorted(items, key=lambda x: (-x[0], x[1]))


def top_k(graph: CircuitGraph, k: int, absolute: bool = True) -> CircuitGraph:
    """The `k` best edges (or components, for node-level graphs), dangling parts pruned."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidInputError(f"--top-k needs a whole number >= 0, got {k!r}.")
    if is_node_level(graph):
        return _keep_nodes(graph, {nid for _, nid in _ranked_components(graph, absolute)[:k]})
    return graph.top_k(k, absolute).prune_dangling()


def threshold(graph: CircuitGraph, t: float, absolute: bool = True) -> CircuitGraph:
    """Edges (or components) scoring at least `t`, dangling parts pruned."""
    if not math.isfinite(t):
        raise InvalidInputError(f"--threshold must be a finite number, got {t}.")
    if is_node_level(graph):
        return _keep_nodes(graph, {nid for s, nid in _ranked_components(graph, absolute) if s >= t})
    return graph.threshold(t, absolute).prune_dangling()


def smallest_faithful(graph: CircuitGraph, target: float, evaluator: Evaluator,
                      absolute: bool = True) -> CircuitGraph:
    """The smallest top-k circuit whose faithfulness reaches `target` (binary search over k).

    Faithfulness is not guaranteed to grow with k; the search assumes it does, as MIB's curves
    nearly always do, and returns the full circuit (faithfulness 1 by construction) at worst.
    """
    if not (0.0 < target <= 1.0):
        raise InvalidInputError(f"--faithfulness must be in (0, 1], got {target}.")
    lo, hi = 0, n_candidates(graph)
    while lo < hi:
        mid = (lo + hi) // 2
        if evaluator.faithfulness(top_k(graph, mid, absolute)) >= target:
            hi = mid
        else:
            lo = mid + 1
    return top_k(graph, lo, absolute)


def select(graph: CircuitGraph, selection: Selection, evaluator: Evaluator | None = None) -> CircuitGraph:
    """Mark the circuit chosen by `selection` in a scored graph (the faithfulness rule needs `evaluator`)."""
    rule, value = selection.rule, selection.value
    if rule is SelectionRule.GIVEN:
        raise InvalidInputError("A discovered circuit needs a selection rule: --top-k, --threshold or --faithfulness.")
    if value is None:
        raise InvalidInputError(f"Selection rule {rule.value} needs a value, e.g. --{rule.value} 0.8.")
    if rule is SelectionRule.TOP_K:
        if float(value) != int(value):
            raise InvalidInputError(f"--top-k needs a whole number, got {value}.")
        return top_k(graph, int(value), selection.absolute)
    if rule is SelectionRule.THRESHOLD:
        return threshold(graph, float(value), selection.absolute)
    if evaluator is None:
        raise InvalidInputError("Selecting by faithfulness needs the model and dataset to evaluate circuits on.")
    return smallest_faithful(graph, float(value), evaluator, selection.absolute)
