"""Compare two circuits: sizes, set overlaps, score-weighted overlap, shared and exclusive
components with their roles, and the same at a matched size.

Input and logits nodes are in every circuit, so the node overlaps leave them out by default
(``include_io=True`` puts them back); edges are compared whole, including edges from ``input``
and into ``logits``. Feature-level circuits compare the same way: their feature and error
nodes count as nodes, and a ``features`` overlap is reported when either side has features.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from catalog.errors import AmbiguousReferenceError, InvalidInputError
from catalog.graph import CircuitGraph, Node
from catalog.naming import NodeKind
from catalog.provenance import Circuit

if TYPE_CHECKING:
    from catalog.store import Catalog

IO_KINDS = frozenset({NodeKind.INPUT, NodeKind.LOGITS})


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


class Component(_Value):
    """A component in a comparison, with its role and weight (see `weights`) in each circuit."""

    id: str
    kind: str
    role_a: str | None = None
    role_b: str | None = None
    weight_a: float | None = None
    weight_b: float | None = None


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


class Overlaps(_Value):
    """Every overlap figure between two circuits (or between their matched-size versions)."""

    nodes: SetOverlap
    heads: SetOverlap
    mlps: SetOverlap
    features: SetOverlap | None
    edges: SetOverlap
    weighted: float | None
    shared: tuple[Component, ...]
    only_a: tuple[Component, ...]
    only_b: tuple[Component, ...]


class Matched(Overlaps):
    """Overlaps after cutting both circuits to the same size: the top `k` edges by |score|
    re-selected from each full scored graph (``unit="edges"``), or, when a side has no scored
    edges, its top `k` components by |node score| (``unit="components"``)."""

    k: int
    unit: Literal["edges", "components"]


class Comparison(Overlaps):
    """The result of `compare`: both sides, every overlap, and the matched-size figures if asked.
    ``role`` and ``collapse_positions`` say how position-resolved circuits were compared."""

    a: Side
    b: Side
    include_io: bool
    matched: Matched | None = None
    role: str | None = None
    collapse_positions: bool = False


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


def _nodes(graph: CircuitGraph, include_io: bool) -> dict[str, Node]:
    return {n.id: n for n in graph.circuit_nodes if include_io or n.kind not in IO_KINDS}


def overlaps(ga: CircuitGraph, gb: CircuitGraph, include_io: bool = False) -> dict[str, object]:
    """Every `Overlaps` field for two graphs over the same model."""
    na, nb = _nodes(ga, include_io), _nodes(gb, include_io)
    wa = {k: v for k, v in weights(ga).items() if k in na}
    wb = {k: v for k, v in weights(gb).items() if k in nb}
    ra, rb = ga.roles(), gb.roles()

    def of_kind(nodes: dict[str, Node], kind: NodeKind) -> set[str]:
        return {i for i, n in nodes.items() if n.kind is kind}

    def component(i: str) -> Component:
        n = na.get(i) or nb[i]
        return Component(id=i, kind=n.kind.value, role_a=ra.get(i), role_b=rb.get(i),
                         weight_a=wa.get(i), weight_b=wb.get(i))

    def ranked(ids: set[str]) -> tuple[Component, ...]:
        return tuple(component(i) for i in sorted(ids, key=lambda i: (-max(wa.get(i, 0.0), wb.get(i, 0.0)), i)))

    has_features = any(n.kind is NodeKind.FEATURE for n in (*na.values(), *nb.values()))
    return {
        "nodes": SetOverlap.of(na, nb),
        "heads": SetOverlap.of(of_kind(na, NodeKind.ATTENTION), of_kind(nb, NodeKind.ATTENTION)),
        "mlps": SetOverlap.of(of_kind(na, NodeKind.MLP), of_kind(nb, NodeKind.MLP)),
        "features": SetOverlap.of(of_kind(na, NodeKind.FEATURE), of_kind(nb, NodeKind.FEATURE))
        if has_features else None,
        "edges": SetOverlap.of({e.key for e in ga.circuit_edges}, {e.key for e in gb.circuit_edges}),
        "weighted": weighted_overlap(wa, wb),
        "shared": ranked(na.keys() & nb.keys()),
        "only_a": ranked(na.keys() - nb.keys()),
        "only_b": ranked(nb.keys() - na.keys()),
    }


def at_matched_size(ga: CircuitGraph, gb: CircuitGraph, k: int, include_io: bool = False) -> Matched:
    """Cut both graphs to size `k` (see `Matched`) and compare the results."""
    if k < 1:
        raise InvalidInputError(f"The matched size must be a positive number, got {k}.")
    if any(e.score is not None for e in ga.edges) and any(e.score is not None for e in gb.edges):
        return Matched(k=k, unit="edges", **overlaps(ga.top_k(k), gb.top_k(k), include_io))
    cut_a, cut_b = _top_components(ga, k, include_io), _top_components(gb, k, include_io)
    return Matched(k=k, unit="components", **overlaps(cut_a, cut_b, include_io))


def _top_components(graph: CircuitGraph, k: int, include_io: bool) -> CircuitGraph:
    ranked = sorted(_nodes(graph, include_io).values(),
                    key=lambda n: (n.score is None, -abs(n.score or 0.0), n.id))
    keep = {n.id for n in ranked[:k]} | ({n.id for n in graph.nodes if n.kind in IO_KINDS} if not include_io else set())
    return graph.restrict_to(keep)


def side_of(circuit: Circuit) -> Side:
    size = circuit.graph.summary()
    return Side(id=circuit.id or 0, name=circuit.name, model=circuit.model, task=circuit.task,
                method=circuit.provenance.method, nodes=size["nodes"], edges=size["edges"],
                heads=size["heads"], mlps=size["mlps"], features=size["features"])


def compare(cat: Catalog, a: str | int, b: str | int, model: str | None = None, matched_k: int | None = None,
            include_io: bool = False, role: str | None = None, collapse_positions: bool = False) -> Comparison:
    """Compare circuits `a` and `b`: ids, task names (the newest circuit for the task on the
    model) or circuit names. Without `model`, task names pick the one model both have circuits
    on; several such models, or circuits on different models, are refused with the candidates
    listed. `matched_k` adds the figures at a matched size (see `Matched`). Loads only these
    two graphs.

    Position-resolved circuits (``a1.h0@END``) compare per (component, role); `role` keeps
    only the nodes at that role, and `collapse_positions` compares components (a component is in
    a circuit when it is at any role, its score the sum over roles)."""
    ca, cb = compare_models(cat, a, b, model)
    ga, gb = positioned(ca, role, collapse_positions), positioned(cb, role, collapse_positions)
    if not collapse_positions and bool(ga.position_roles()) != bool(gb.position_roles()):
        resolved = ca if ga.position_roles() else cb
        raise InvalidInputError(
            f"Circuit #{resolved.id} is position-resolved and the other is not, so their node ids never "
            "match; add --collapse-positions to compare components."
        )
    return Comparison(a=side_of(ca), b=side_of(cb), include_io=include_io, role=role,
                      collapse_positions=collapse_positions,
                      matched=at_matched_size(ga, gb, matched_k, include_io) if matched_k else None,
                      **overlaps(ga, gb, include_io))


def positioned(circuit: Circuit, role: str | None, collapse: bool) -> CircuitGraph:
    """A circuit's graph at one role and/or collapsed to components, as `compare` uses it."""
    graph = circuit.graph
    if role is not None:
        try:
            graph = graph.at_role(role)
        except InvalidInputError as exc:
            raise InvalidInputError(f"Circuit #{circuit.id} ({circuit.task}): {exc}") from None
    return graph.collapse_positions() if collapse else graph


def compare_models(cat: Catalog, a: str | int, b: str | int, model: str | None = None) -> tuple[Circuit, Circuit]:
    """The two circuits `a` and `b` name, on one model (see `compare` for how names resolve)."""
    if model is None:
        model = _common_model(cat, str(a), str(b))
    ca, cb = cat.get(cat.resolve(a, model)), cat.get(cat.resolve(b, model))
    if ca.model != cb.model:
        raise InvalidInputError(
            f"Circuit #{ca.id} is on {ca.model} and #{cb.id} on {cb.model}: component ids only correspond "
            "within one model. Compare circuits of the same model (use --model to pick one)."
        )
    return ca, cb


def _common_model(cat: Catalog, a: str, b: str) -> str | None:
    """The one model both references have circuits on, when either is a name; else None."""
    refs = [r.strip() for r in (a, b) if not r.strip().lstrip("#").isdigit()]
    if not refs:
        return None
    rows = cat.circuits()
    models: dict[str, set[str]] = {}
    for ref in refs:
        by_task = {r.model for r in rows if r.task == ref}
        models[ref] = by_task or {r.model for r in rows if r.name == ref}
    fixed = [cat.summary(cat.resolve(r)).model for r in (a, b) if r.strip().lstrip("#").isdigit()]
    common = set.intersection(*models.values(), *({m} for m in fixed))
    if len(common) == 1:
        return common.pop()
    for ref, found in models.items():
        if not found:
            cat.resolve(ref)  # raises NotFoundError naming the nearest task
    listed = "; ".join(f"'{ref}' on {', '.join(sorted(ms))}" for ref, ms in models.items())
    if not common:
        raise AmbiguousReferenceError(
            f"No model has circuits for both: {listed}. Compare circuits of one model (give ids or --model)."
        )
    raise AmbiguousReferenceError(f"Both have circuits on several models ({', '.join(sorted(common))}): {listed}. "
                                  "Choose one with --model.")
