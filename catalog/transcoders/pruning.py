"""Prune an attribution graph by influence on the target logit, as Ameisen et al. 2025 do.

Take the absolute direct effects and normalise each target's incoming effects to sum to 1: the
matrix ``A`` (``A[t, s]``: the share of ``t``'s input that comes from ``s``). A node's
**influence** on the logit is the logit's row of ``A + A^2 + A^3 + ... = (I - A)^-1 - I``: the
summed normalised effect over every path (the graph is acyclic, so the series ends).

1. Nodes: the features, sorted by influence, are kept until their cumulative influence reaches
   `node_threshold` of the features' total (0.8); inputs, error nodes and the logit stay.
2. Edges: on the kept nodes, ``A`` is normalised again and each edge scored by its normalised
   weight times its target's influence (the logit counting 1); edges are kept, best first, until
   their cumulative score reaches `edge_threshold` of the total (0.98).
3. Nodes left with no kept path to the logit are dropped, with their edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from catalog.errors import InvalidInputError
from catalog.transcoders.attribution import Attribution

NODE_THRESHOLD = 0.8
EDGE_THRESHOLD = 0.98


@dataclass(frozen=True)
class Pruned:
    """The kept nodes and edges of an `Attribution` (boolean masks in its node numbering), and
    every node's influence on the logit in the full graph."""

    nodes: torch.Tensor
    edges: torch.Tensor
    influence: torch.Tensor


def normalised(adjacency: torch.Tensor) -> torch.Tensor:
    """``|A|`` with each row divided by its sum (rows summing to 0 stay 0).

    >>> normalised(torch.tensor([[0.0, 0.0], [3.0, -1.0]])).tolist()
    [[0.0, 0.0], [0.75, 0.25]]
    """
    a = adjacency.abs()
    return a.div_(a.sum(1, keepdim=True).clamp_min(1e-30))  # in place: a graph's matrix can be large


def influence(a: torch.Tensor, target: int) -> torch.Tensor:
    """Row `target` of ``A + A^2 + ...`` for an acyclic normalised `a`: every node's influence.

    >>> a = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    >>> influence(a, 2).tolist()  # node 0: 0.5 directly + 0.5 * 1 through node 1
    [1.0, 0.5, 0.0]
    """
    row = torch.zeros(a.shape[0], dtype=a.dtype)
    row[target] = 1.0
    total = torch.zeros_like(row)
    for _ in range(a.shape[0]):
        row = row @ a
        if not bool(row.any()):
            break
        total += row
    return total


def _smallest_covering(scores: torch.Tensor, share: float) -> torch.Tensor:
    """Mask of the fewest highest `scores` whose sum reaches `share` of the total."""
    keep = torch.zeros_like(scores, dtype=torch.bool)
    total = float(scores.sum())
    if total <= 0:
        return keep
    order = scores.argsort(descending=True, stable=True)  # ties: the first in node order first
    cumulative = scores[order].cumsum(0) / total
    n = int((cumulative < share).sum()) + 1  # up to and including the one that reaches the share
    keep[order[:min(n, len(order))]] = True
    return keep & (scores > 0)


def prune(graph: Attribution, node_threshold: float = NODE_THRESHOLD,
          edge_threshold: float = EDGE_THRESHOLD) -> Pruned:
    """The nodes and edges kept at these cumulative-influence thresholds (see the module doc)."""
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 < value <= 1.0:
            raise InvalidInputError(f"{name} must be in (0, 1], got {value}.")
    logit = graph.logit_index
    full = influence(normalised(graph.adjacency), logit)
    first, last = graph.n_inputs, graph.n_inputs + len(graph.features)
    features = _smallest_covering(full[first:last], node_threshold).nonzero()[:, 0] + first
    # Stages 2 and 3 on the kept nodes only (in node order): every other node's row and column
    # of the full matrix would be zero.
    kept = torch.cat([torch.arange(first), features, torch.arange(last, graph.n_nodes)])
    sub = graph.adjacency[kept][:, kept]
    a = normalised(sub)
    weight = influence(a, len(kept) - 1)
    weight[-1] = 1.0
    scores = a * weight[:, None]
    edges = _smallest_covering(scores.flatten(), edge_threshold).reshape(scores.shape) & (sub != 0)

    # Drop what no longer reaches the logit (walk back from it along kept edges).
    alive = torch.zeros(len(kept), dtype=torch.bool)
    alive[-1] = True
    frontier = alive.clone()
    while bool(frontier.any()):
        reached = edges[frontier].any(0) & ~alive
        alive |= reached
        frontier = reached
    edges &= alive[:, None] & alive[None, :]
    nodes = torch.zeros(graph.n_nodes, dtype=torch.bool)
    nodes[kept[alive]] = True
    full_edges = torch.zeros(graph.n_nodes, graph.n_nodes, dtype=torch.bool)
    full_edges[kept[:, None], kept[None, :]] = edges
    return Pruned(nodes=nodes, edges=full_edges, influence=full)
