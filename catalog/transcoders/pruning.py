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
    return a / a.sum(1, keepdim=True).clamp_min(1e-30)


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
    order = scores.argsort(descending=True)
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
    a = normalised(graph.adjacency)
    logit = graph.logit_index
    full = influence(a, logit)
    nodes = torch.ones(graph.n_nodes, dtype=torch.bool)
    first, last = graph.n_inputs, graph.n_inputs + len(graph.features)
    nodes[first:last] = _smallest_covering(full[first:last], node_threshold)

    kept = graph.adjacency * nodes[:, None] * nodes[None, :]
    a = normalised(kept)
    weight = influence(a, logit)
    weight[logit] = 1.0
    scores = a * weight[:, None]
    edges = _smallest_covering(scores.flatten(), edge_threshold).reshape(scores.shape) & (kept != 0)

    # Drop what no longer reaches the logit (walk back from it along kept edges).
    alive = torch.zeros(graph.n_nodes, dtype=torch.bool)
    alive[logit] = True
    frontier = alive.clone()
    while bool(frontier.any()):
        reached = edges[frontier].any(0) & ~alive
        alive |= reached
        frontier = reached
    edges &= alive[:, None] & alive[None, :]
    return Pruned(nodes=alive, edges=edges, influence=full)
