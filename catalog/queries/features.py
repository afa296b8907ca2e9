"""Feature circuits compared across tasks: which transcoder features two tasks' attribution graphs
share, weighted by influence, with the head-level result of the same two tasks beside it.

A feature circuit (``catalog discover --method attribution-graph --task T``) holds feature nodes
per role, ``f2.17@END[tc]``, each scored by its influence on the task's target logit averaged over
the prompts. Two of them are compared over their in-circuit feature nodes (error nodes, inputs
and logits left out):

* plain counts: shared features, sizes, Jaccard and overlap coefficient;
* the **influence-weighted Jaccard**: the sum over features of ``min(influence_A, influence_B)``
  divided by the sum of ``max(influence_A, influence_B)``, a feature absent from a circuit
  weighing 0 there. 1.0 means the same features carrying the same influence;
* each side's **shared mass**: the share of its features' total influence on the shared ones.

Per role (``f2.17@END`` and ``f2.17@S2`` differ), or collapsed to features with
`collapse_positions` (a feature's influence summed over its roles): tasks name their positions
differently, so only roles both tasks have (``END``) can match per role.

Beside it, when both tasks also have a head circuit on the model (the newest circuit with
attention heads that is not a per-prompt graph), the same two figures over those circuits' heads,
positions collapsed. Nothing here imports torch; only the compared graphs are loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from catalog.errors import InvalidInputError, NotFoundError
from catalog.graph import CircuitGraph
from catalog.naming import NodeKind, component_of
from catalog.provenance import PART_TAG, Circuit
from catalog.queries.overlap import SetOverlap, Side, _Value, side_of, weighted_overlap, weights

if TYPE_CHECKING:
    from catalog.store import Catalog


class FeatureWeight(_Value):
    """A feature node in a comparison: its label, and its influence and prompt fraction in each
    circuit (None where it is not in that circuit; fractions only per role)."""

    id: str
    label: str | None = None
    influence_a: float | None = None
    influence_b: float | None = None
    fraction_a: float | None = None
    fraction_b: float | None = None


class FeatureOverlap(_Value):
    """Two feature circuits' overlap over their in-circuit features (see the module docstring)."""

    collapsed: bool
    counts: SetOverlap
    weighted: float | None
    shared_mass_a: float | None
    shared_mass_b: float | None
    shared: tuple[FeatureWeight, ...]
    only_a: tuple[FeatureWeight, ...]
    only_b: tuple[FeatureWeight, ...]


class HeadLevel(_Value):
    """The head circuits of the same two tasks, compared over their heads (positions collapsed).
    ``missing`` names the tasks without a head circuit (then the figures are None)."""

    a: Side | None = None
    b: Side | None = None
    heads: SetOverlap | None = None
    weighted: float | None = None
    shared: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


class FeatureReuseRow(_Value):
    """A feature (per role, or collapsed) and the tasks whose feature circuits hold it."""

    feature: str
    label: str | None
    n_tasks: int
    tasks: tuple[str, ...]
    influence: dict[str, float]


class FeatureReuse(_Value):
    """Feature reuse across the tasks' feature circuits on one model (newest per task).

    ``shared[i][j]``/``jaccard[i][j]`` count features; ``weighted[i][j]`` is the
    influence-weighted Jaccard. ``head_jaccard``/``head_weighted`` are the same over the tasks'
    head circuits (``head_circuits``), None where a task has none."""

    model: str
    collapsed: bool
    tasks: tuple[str, ...]
    circuits: dict[str, int]
    sizes: tuple[int, ...]
    shared: tuple[tuple[int, ...], ...]
    jaccard: tuple[tuple[float | None, ...], ...]
    weighted: tuple[tuple[float | None, ...], ...]
    head_circuits: dict[str, int]
    head_jaccard: tuple[tuple[float | None, ...], ...]
    head_weighted: tuple[tuple[float | None, ...], ...]
    features: tuple[FeatureReuseRow, ...]


# --- which circuits ---------------------------------------------------------------------------


def is_feature_circuit(circuit: Circuit) -> bool:
    """Whether the circuit holds transcoder features in its circuit."""
    return any(n.kind is NodeKind.FEATURE for n in circuit.graph.circuit_nodes)


def require_feature_circuit(circuit: Circuit, what: str = "a feature circuit") -> Circuit:
    """`circuit`, or a one-line error saying it is not a feature circuit and how to get one."""
    if not is_feature_circuit(circuit):
        kinds = sorted({n.kind.value for n in circuit.graph.circuit_nodes} - {"input", "logits"})
        raise InvalidInputError(
            f"Circuit #{circuit.id} ({circuit.task}, {circuit.provenance.method or circuit.provenance.source.value}) "
            f"holds no features (it holds {', '.join(kinds) or 'nothing but input and logits'}); {what} is "
            f"expected here. Discover one with `catalog discover --method attribution-graph --task {circuit.task}`.")
    return circuit


def newest_head_circuit(cat: Catalog, task: str, model: str) -> int | None:
    """The newest circuit of `task` on `model` that holds attention heads and is not a per-prompt
    graph (None when there is none)."""
    rows = [r for r in cat.circuits(model=model, task=task) if r.n_heads > 0 and PART_TAG not in r.tags]
    return rows[-1].id if rows else None


def newest_feature_circuit(cat: Catalog, task: str, model: str) -> int | None:
    """The newest feature circuit of `task` on `model` that is not a per-prompt graph."""
    rows = [r for r in cat.circuits(model=model, task=task) if r.n_features > 0 and PART_TAG not in r.tags]
    return rows[-1].id if rows else None


def resolve_circuit(cat: Catalog, ref: str | int, kind: NodeKind, model: str | None = None) -> int:
    """`ref` resolved as `Catalog.resolve` does, except that a task name whose newest circuit holds
    no node of `kind` (features, or attention heads) picks the task's newest circuit that does."""
    cid = cat.resolve(ref, model=model)
    s = cat.summary(cid)
    has = s.n_features if kind is NodeKind.FEATURE else s.n_heads
    if has or str(ref).strip().lower() != s.task.lower():
        return cid
    pick = newest_feature_circuit if kind is NodeKind.FEATURE else newest_head_circuit
    return pick(cat, s.task, s.model) or cid


def prompt_graph_id(cat: Catalog, ref: str | int, index: int, model: str | None = None) -> int:
    """The id of prompt `index`'s graph (0-based) stored with the feature circuit `ref`: the
    per-prompt attribution graphs a task's discovery keeps beside the aggregate."""
    cid = cat.resolve(ref, model=model)
    parts = cat.parts(cid)
    if not parts:
        s = cat.summary(cid)
        why = ("it is itself one prompt's graph" if PART_TAG in s.tags
               else "only a task's attribution-graph discovery keeps them "
                    f"(`catalog discover --method attribution-graph --task {s.task}`)")
        raise InvalidInputError(f"Circuit #{cid} stores no per-prompt graphs: {why}.")
    if not isinstance(index, int) or not 0 <= index < len(parts):
        raise InvalidInputError(f"Circuit #{cid} keeps the graphs of prompts 0 to {len(parts) - 1}; "
                                f"--prompt {index} is not one of them.")
    return parts[index]


# --- the overlap ------------------------------------------------------------------------------


def _features(circuit: Circuit, collapse: bool, role: str | None = None
              ) -> tuple[dict[str, float], dict[str, str], dict[str, float]]:
    """(influence, label, prompt fraction) of each in-circuit feature node, per role or collapsed
    (only those at `role` when given)."""
    from catalog.queries.compare import positioned

    graph = positioned(circuit, role, False)
    labels = graph.labels()
    values: dict[str, Any] = (circuit.provenance.method_params.get("attribution") or {}).get("nodes") or {}
    if collapse:
        labels = {component_of(k): v for k, v in labels.items()}
        graph = graph.collapse_positions()
    w = weights(graph)
    feats = {n.id: w[n.id] for n in graph.circuit_nodes if n.kind is NodeKind.FEATURE}
    fractions = {} if collapse else {k: float(values[k]["fraction"]) for k in feats
                                     if isinstance(values.get(k), dict) and "fraction" in values[k]}
    return feats, {k: labels[k] for k in feats if k in labels}, fractions


def feature_overlap(a: Circuit, b: Circuit, collapse_positions: bool = False, role: str | None = None) -> FeatureOverlap:
    """Plain and influence-weighted overlap of two feature circuits' features (module docstring);
    `role` keeps only the features at that role."""
    wa, la, fa = _features(require_feature_circuit(a), collapse_positions, role)
    wb, lb, fb = _features(require_feature_circuit(b), collapse_positions, role)
    shared = wa.keys() & wb.keys()

    def row(i: str) -> FeatureWeight:
        return FeatureWeight(id=i, label=la.get(i) or lb.get(i), influence_a=wa.get(i), influence_b=wb.get(i),
                             fraction_a=fa.get(i), fraction_b=fb.get(i))

    def ranked(ids: set[str]) -> tuple[FeatureWeight, ...]:
        return tuple(row(i) for i in sorted(ids, key=lambda i: (-max(wa.get(i, 0.0), wb.get(i, 0.0)), i)))

    def mass(w: dict[str, float]) -> float | None:
        total = sum(w.values())
        return sum(w[i] for i in shared) / total if total > 0 else None

    return FeatureOverlap(collapsed=collapse_positions, counts=SetOverlap.of(wa, wb), weighted=weighted_overlap(wa, wb),
                          shared_mass_a=mass(wa), shared_mass_b=mass(wb), shared=ranked(shared),
                          only_a=ranked(wa.keys() - shared), only_b=ranked(wb.keys() - shared))


def _heads(graph: CircuitGraph) -> dict[str, float]:
    g = graph.collapse_positions()
    w = weights(g)
    return {n.id: w[n.id] for n in g.circuit_nodes if n.kind is NodeKind.ATTENTION}


def head_level(cat: Catalog, task_a: str, task_b: str, model: str) -> HeadLevel:
    """The newest head circuits of two tasks on `model`, compared over their heads."""
    ids = {t: newest_head_circuit(cat, t, model) for t in dict.fromkeys((task_a, task_b))}
    missing = tuple(t for t, i in ids.items() if i is None)
    if missing:
        return HeadLevel(missing=missing)
    ca, cb = cat.get(ids[task_a] or 0), cat.get(ids[task_b] or 0)
    ha, hb = _heads(ca.graph), _heads(cb.graph)
    return HeadLevel(a=side_of(ca), b=side_of(cb), heads=SetOverlap.of(ha, hb), weighted=weighted_overlap(ha, hb),
                     shared=tuple(sorted(ha.keys() & hb.keys())))


# --- reuse across tasks -----------------------------------------------------------------------


def feature_reuse(cat: Catalog, model: str | None = None, collapse_positions: bool = False) -> FeatureReuse:
    """Feature overlap between every pair of tasks' newest feature circuits on one model, plain
    and influence-weighted, with the head circuits' overlap of the same tasks beside it."""
    from catalog.queries.reuse import only_model

    model = only_model(cat, model)
    rows = [r for r in cat.circuits(model=model) if r.n_features > 0 and PART_TAG not in r.tags]
    if not rows:
        raise NotFoundError(f"No feature circuits on {model}. Discover them with "
                            "`catalog discover --method attribution-graph --task T`.")
    newest = {r.task: r.id for r in rows}  # oldest first: the last one per task wins
    tasks = tuple(sorted(newest))
    feats = {t: _features(cat.get(newest[t]), collapse_positions) for t in tasks}
    heads: dict[str, dict[str, float]] = {}
    head_ids: dict[str, int] = {}
    for t in tasks:
        hid = newest_head_circuit(cat, t, model)
        if hid is not None:
            head_ids[t], heads[t] = hid, _heads(cat.get(hid).graph)
    w = [feats[t][0] for t in tasks]
    counts = [[SetOverlap.of(x, y) for y in w] for x in w]

    def matrix(values: Sequence[dict[str, float] | None]) -> tuple[tuple[float | None, ...], ...]:
        return tuple(tuple(weighted_overlap(x, y) if x is not None and y is not None else None for y in values)
                     for x in values)

    hv = [heads.get(t) for t in tasks]
    head_jaccard = tuple(tuple(SetOverlap.of(x, y).jaccard if x is not None and y is not None else None for y in hv)
                         for x in hv)
    holders: dict[str, list[str]] = {}
    for t in tasks:
        for f in feats[t][0]:
            holders.setdefault(f, []).append(t)
    labels = {f: lab for t in tasks for f, lab in feats[t][1].items()}
    out = [FeatureReuseRow(feature=f, label=labels.get(f), n_tasks=len(ts), tasks=tuple(ts),
                           influence={t: feats[t][0][f] for t in ts}) for f, ts in holders.items()]
    out.sort(key=lambda r: (-r.n_tasks, -sum(r.influence.values()), r.feature))
    return FeatureReuse(model=model, collapsed=collapse_positions, tasks=tasks, circuits={t: newest[t] for t in tasks},
                        sizes=tuple(len(x) for x in w), shared=tuple(tuple(c.shared for c in r) for r in counts),
                        jaccard=tuple(tuple(c.jaccard for c in r) for r in counts), weighted=matrix(w),
                        head_circuits=head_ids, head_jaccard=head_jaccard, head_weighted=matrix(hv),
                        features=tuple(out))
