"""The figures every comparison of circuits is made of: set overlaps, node weights and the
score-weighted overlap, and the description of a compared circuit (`Side`)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from catalog.graph import CircuitGraph
from catalog.provenance import Circuit


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class SetOverlap(_Value):
    """Two sets' sizes and overlap. ``jaccard`` = |A∩B| / |A∪B|; ``overlap`` (the overlap
    coefficient) = |A∩B| / min(|A|, |B|). Both are None when undefined (empty sets)."""

    size_a: int
    size_b: int
    shared: int
    jaccard: float | None
    overlap: float | None

    @classmethod
    def of(cls, a: Iterable[str], b: Iterable[str]) -> SetOverlap:
        """Example:

        >>> SetOverlap.of({"x", "y"}, {"y", "z", "w"}).model_dump()
        {'size_a': 2, 'size_b': 3, 'shared': 1, 'jaccard': 0.25, 'overlap': 0.5}
        """
        sa, sb = set(a), set(b)
        shared, union, small = len(sa & sb), len(sa | sb), min(len(sa), len(sb))
        return cls(size_a=len(sa), size_b=len(sb), shared=shared,
                    jaccard=shared / union if union else None, overlap=shared / small if small else None)


class Side(_Value):
    """Which circuit a side of the comparison is, and its sizes."""

    id: int
    name: str | None
    model: str
    task: str
    method: str | None
    nodes: int
    edges: int
    heads: int
    mlps: int
    features: int


def weights(graph: CircuitGraph) -> dict[str, float]:
    """Each circuit node's weight for the score-weighted overlap: |node score| when the node has
    a score, else the summed |score| of the in-circuit edges entering or leaving it."""
    edge_mass: dict[str, float] = {}
    for e in graph.circuit_edges:
        w = abs(e.score) if e.score is not None else 0.0
        edge_mass[e.src] = edge_mass.get(e.src, 0.0) + w
        edge_mass[e.dst] = edge_mass.get(e.dst, 0.0) + w
    return {n.id: abs(n.score) if n.score is not None else edge_mass.get(n.id, 0.0) for n in graph.circuit_nodes}


def weighted_overlap(wa: dict[str, float], wb: dict[str, float]) -> float | None:
    """Score-weighted overlap (weighted Jaccard): sum over shared nodes of min(w_a, w_b), divided
    by the sum over all nodes of either circuit of max(w_a, w_b), a missing node weighing 0.
    1.0 means the same nodes with the same weights; None when every weight is 0.

    >>> weighted_overlap({"x": 1.0, "y": 2.0}, {"y": 1.0, "z": 1.0})
    0.25
    """
    keys = wa.keys() | wb.keys()
    den = sum(max(wa.get(k, 0.0), wb.get(k, 0.0)) for k in keys)
    num = sum(min(wa[k], wb[k]) for k in wa.keys() & wb.keys())
    return num / den if den > 0 else None


def side_of(circuit: Circuit) -> Side:
    size = circuit.graph.summary()
    return Side(id=circuit.id or 0, name=circuit.name, model=circuit.model, task=circuit.task,
                method=circuit.provenance.method, nodes=size["nodes"], edges=size["edges"],
                heads=size["heads"], mlps=size["mlps"], features=size["features"])
