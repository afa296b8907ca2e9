"""Choosing the stored circuit from a scored graph: top-k, greedy, threshold, or a target faithfulness.

Edge-level graphs are cut by edge score, then dangling edges (on no input->logits path) are
pruned. Greedy selection grows the circuit from the logits backwards instead (EAP-IG's greedy
top-n), so its edges stay connected to the logits however the scores fall. Position-resolved
graphs (scored ``a1.h0@END`` nodes, no edges) are cut by node score. Node-level graphs
(activation patching: node scores, unscored edges) are cut by node
score over heads and MLPs; the circuit is then every edge among the kept components, ``input``
and ``logits``. The full scored graph is kept either way; only the ``in_circuit`` flags change.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import replace
from typing import TYPE_CHECKING

from catalog.errors import DiscoveryError, InvalidInputError
from catalog.graph import CircuitGraph, Edge
from catalog.naming import NodeKind, forward_rank, parse_node
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


def greedy(graph: CircuitGraph, k: int, absolute: bool = True) -> CircuitGraph:
    """`k` edges grown from the logits, then joined to ``input``: a connected circuit.

    Growing (EAP-IG's greedy selection): starting from ``logits``, repeatedly add the
    best-scoring edge into a node already in the circuit. Joining: the grown edges need not reach
    back to ``input`` (on the embedded model's Colored Objects, EAP's 10 best such edges never
    do), so each node input does not reach gets, in forward order, its best-scoring edge from a
    node that input does reach (``input`` itself always qualifies: it feeds every node). The
    circuit then has at least `k` edges, every one on an input->logits path. Node-level graphs
    are top-k by component: their circuits are connected by construction.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidInputError(f"--top-k needs a whole number >= 0, got {k!r}.")
    if is_node_level(graph) or k == 0:
        return top_k(graph, k, absolute)

    def rank(e: Edge) -> tuple[float, tuple[str, str, str]]:
        return -(abs(e.score) if absolute else e.score), e.key  # type: ignore[arg-type]

    into: dict[str, list[Edge]] = {}
    for e in graph.edges:
        if e.score is not None:
            into.setdefault(e.dst, []).append(e)
    reached = {n.id for n in graph.nodes if n.kind is NodeKind.LOGITS}
    frontier = [(*rank(e), e) for node in reached for e in into.get(node, [])]
    heapq.heapify(frontier)
    chosen: dict[tuple[str, str, str], Edge] = {}
    while frontier and len(chosen) < k:
        *_, e = heapq.heappop(frontier)
        chosen[e.key] = e
        if e.src not in reached:
            reached.add(e.src)
            for item in into.get(e.src, []):
                heapq.heappush(frontier, (*rank(item), item))
    # Join: forward from input over the chosen edges; fix unreached nodes earliest first.
    from_input = {n.id for n in graph.nodes if n.kind is NodeKind.INPUT}
    parallel = graph.shape.parallel_attn_mlp
    for node in sorted(reached, key=lambda i: forward_rank(parse_node(i), parallel)):
        if node in from_input:
            continue
        if not any(e.dst == node and e.src in from_input for e in chosen.values()):
            joins = [e for e in into.get(node, []) if e.src in from_input]
            if not joins:
                continue
            best = min(joins, key=rank)
            chosen[best.key] = best
        from_input.add(node)
    return graph.with_selection(chosen).prune_dangling()


def check_selected(scored: CircuitGraph, chosen: CircuitGraph, selection: Selection) -> list[str]:
    """Refuse an empty circuit; return warnings when selected edges were dropped as dangling.

    Both messages say what to pass instead. Node-level graphs (kept components are always
    connected through ``input`` and ``logits``) only get the emptiness check.
    """
    what = selection.describe()
    if not scored.edges:  # position-resolved: nodes only, each kept node is the circuit
        if not any(n.in_circuit for n in chosen.nodes):
            raise DiscoveryError(f"The selection ({what}) keeps no node; pass a larger --top-k or a lower "
                                 "--threshold, or --faithfulness F.")
        return []
    kept = sum(1 for e in chosen.edges if e.in_circuit)
    instead = "add --greedy to --top-k K (grows a connected circuit from the logits)"
    if kept == 0:
        raise DiscoveryError(
            f"The selection ({what}) leaves an empty circuit: no selected edge lies on a path from "
            f"input to logits. Instead {instead}, pass a larger --top-k or a lower --threshold, or "
            "--faithfulness F."
        )
    if is_node_level(scored) or selection.rule not in (SelectionRule.TOP_K, SelectionRule.THRESHOLD):
        return []
    value = float(selection.value or 0)
    if selection.rule is SelectionRule.TOP_K:
        raw = min(int(value), n_candidates(scored))
    else:
        raw = sum(1 for e in scored.edges if e.score is not None
                  and (abs(e.score) if selection.absolute else e.score) >= value)
    if raw <= kept:
        return []
    if selection.greedy:
        return [f"{what}: {raw - kept} of the {raw} edges grown from the logits have no path from input "
                f"and were dropped; the circuit keeps {kept}. A larger --top-k grows it further."]
    return [f"{what}: {raw - kept} of the {raw} selected edges lie on no input->logits path and were "
            f"dropped; the circuit keeps {kept}. To keep a connected circuit of that size, {instead}."]


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
        raise InvalidInputError(
            "A discovered circuit needs a selection rule: --top-k, --threshold or --faithfulness.")
    if value is None:
        raise InvalidInputError(f"Selection rule {rule.value} needs a value, e.g. --{rule.value} 0.8.")
    if rule is SelectionRule.TOP_K:
        if float(value) != int(value):
            raise InvalidInputError(f"--top-k needs a whole number, got {value}.")
        if selection.greedy and not graph.edges:
            raise InvalidInputError("--greedy grows a circuit along edges; a position-resolved graph has none. "
                                    "Drop --greedy: its nodes are selected by score.")
        return (greedy if selection.greedy else top_k)(graph, int(value), selection.absolute)
    if rule is SelectionRule.THRESHOLD:
        return threshold(graph, float(value), selection.absolute)
    if evaluator is None:
        raise InvalidInputError("Selecting by faithfulness needs the model and dataset to evaluate circuits on.")
    return smallest_faithful(graph, float(value), evaluator, selection.absolute)
