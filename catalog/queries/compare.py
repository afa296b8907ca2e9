"""Compare two circuits: sizes, set overlaps, score-weighted overlap, shared and exclusive
components with their roles, and the same at a matched size.

Input and logits nodes are in every circuit, so the node overlaps leave them out by default
(``include_io=True`` puts them back); edges are compared whole, including edges from ``input``
and into ``logits``. Feature-level circuits compare the same way: their feature and error
nodes count as nodes, and a ``features`` overlap is reported when either side has features.
When both sides are feature circuits the comparison also holds their feature-level overlap,
influence-weighted, and the two tasks' head circuits compared beside it
(`catalog.queries.features`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from catalog.errors import AmbiguousReferenceError, InvalidInputError
from catalog.graph import CircuitGraph, Node
from catalog.naming import NodeKind
from catalog.provenance import Circuit
from catalog.queries.features import FeatureOverlap, HeadLevel, feature_overlap, head_level, is_feature_circuit
from catalog.queries.overlap import SetOverlap, Side, _Value, side_of, weighted_overlap, weights

if TYPE_CHECKING:
    from catalog.store import Catalog

IO_KINDS = frozenset({NodeKind.INPUT, NodeKind.LOGITS})


class Component(_Value):
    """A component in a comparison, with its role and weight (see `weights`) in each circuit."""

    id: str
    kind: str
    role_a: str | None = None
    role_b: str | None = None
    weight_a: float | None = None
    weight_b: float | None = None


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
    ``role`` and ``collapse_positions`` say how position-resolved circuits were compared. When
    both are feature circuits, ``feature_level`` holds their features' plain and
    influence-weighted overlap and ``head_level`` the two tasks' head circuits compared beside it
    (see `catalog.queries.features`)."""

    a: Side
    b: Side
    include_io: bool
    matched: Matched | None = None
    role: str | None = None
    collapse_positions: bool = False
    feature_level: FeatureOverlap | None = None
    head_level: HeadLevel | None = None


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
    feature_level = head = None
    if is_feature_circuit(ca) and is_feature_circuit(cb):
        feature_level = feature_overlap(ca, cb, collapse_positions, role)
        head = head_level(cat, ca.task, cb.task, ca.model)
    return Comparison(a=side_of(ca), b=side_of(cb), include_io=include_io, role=role,
                      collapse_positions=collapse_positions,
                      matched=at_matched_size(ga, gb, matched_k, include_io) if matched_k else None,
                      feature_level=feature_level, head_level=head, **overlaps(ga, gb, include_io))


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
