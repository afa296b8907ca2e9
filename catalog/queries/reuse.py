"""Questions over many circuits, answered by SQL aggregates in the store (no graph is loaded):
which components are reused by most tasks, how much each pair of tasks shares, where a component
appears, and the all-pairs overlap of many circuits.

Input and logits nodes are in every circuit, so these leave them out by default
(`DEFAULT_KINDS`: heads, MLPs, features and error nodes); pass ``kinds`` to choose.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from catalog.atomic import atomic_output, check_target
from catalog.errors import AmbiguousReferenceError, InvalidInputError, NotFoundError
from catalog.naming import NodeKind, component_of, parse_component, parse_node

if TYPE_CHECKING:
    import numpy as np

    from catalog.store import Catalog, FindHit

DEFAULT_KINDS: tuple[NodeKind, ...] = (NodeKind.ATTENTION, NodeKind.MLP, NodeKind.FEATURE, NodeKind.ERROR)


class ComponentReuse(BaseModel):
    """A component and the tasks whose circuits contain it."""

    model_config = ConfigDict(frozen=True)

    component: str
    kind: str
    n_tasks: int
    n_circuits: int
    tasks: tuple[str, ...]


class Reuse(BaseModel):
    """Component reuse on one model and the task x task overlap of the newest circuit per task.

    ``jaccard[i][j]`` is the Jaccard index of tasks[i]'s and tasks[j]'s component sets (None when
    both are empty), ``shared[i][j]`` the number of components they share and ``sizes[i]`` the
    size of tasks[i]'s set; ``circuits`` names the circuit used for each task.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    kinds: tuple[str, ...]
    components: tuple[ComponentReuse, ...]
    tasks: tuple[str, ...]
    circuits: dict[str, int]
    sizes: tuple[int, ...]
    shared: tuple[tuple[int, ...], ...]
    jaccard: tuple[tuple[float | None, ...], ...]
    stable: float | None = None  # components kept: those in at least this fraction of seeds
    plot: str | None = None  # where the heatmap was drawn, when one was asked for


def _kinds(kinds: Iterable[NodeKind | str] | None) -> tuple[NodeKind, ...]:
    if kinds is None:
        return DEFAULT_KINDS
    try:
        return tuple(NodeKind(k) for k in kinds)
    except ValueError:
        raise InvalidInputError(f"Unknown component kind in {list(kinds)!r}. Known: "
                                f"{', '.join(k.value for k in NodeKind)}.") from None


def only_model(cat: Catalog, model: str | None) -> str:
    """`model`, or the one model the catalog has circuits for (several: an error listing them)."""
    if model:
        return model
    counts: dict[str, int] = {}
    for row in cat.circuits():
        counts[row.model] = counts.get(row.model, 0) + 1
    if not counts:
        raise NotFoundError(f"The catalog {cat.url} holds no circuits yet. Import or discover some first.")
    if len(counts) > 1:
        listed = ", ".join(f"{m} ({n} circuits)" for m, n in sorted(counts.items()))
        raise AmbiguousReferenceError(f"The catalog has circuits on several models: {listed}. Choose one with --model.")
    return next(iter(counts))


def reuse(cat: Catalog, model: str | None = None, kinds: Iterable[NodeKind | str] | None = None,
          collapse_positions: bool = False, stable: float | None = None) -> Reuse:
    """How many tasks' circuits contain each component, and the task x task overlap matrix.

    Counts use every circuit on the model; the matrix uses the newest circuit per task.
    Leaves out input and logits unless `kinds` asks for them. Position-resolved nodes
    (``a1.h0@END``) count per role, or per component with `collapse_positions`. With `stable`
    (a fraction in (0, 1]), each task keeps only the components its discovered circuits contain
    in at least that fraction of their seeds (see `catalog.queries.stability`)."""
    model = only_model(cat, model)
    chosen = _kinds(kinds)
    if stable is not None:
        if collapse_positions:
            raise InvalidInputError("Give --stable or --collapse-positions, not both.")
        return _stable_reuse(cat, model, chosen, stable)
    if collapse_positions:
        return _collapsed_reuse(cat, model, chosen)
    counts = cat.component_counts(model=model, kinds=chosen)
    ov = cat.task_overlap(model, kinds=chosen)
    tasks = ov.tasks
    sizes = tuple(ov.sizes[t] for t in tasks)
    shared = tuple(tuple(ov.shared[t][u] for u in tasks) for t in tasks)
    jaccard = tuple(
        tuple((shared[i][j] / (sizes[i] + sizes[j] - shared[i][j])) if sizes[i] + sizes[j] else None
              for j in range(len(tasks)))
        for i in range(len(tasks)))
    return Reuse(model=ov.model, kinds=tuple(k.value for k in chosen),
                 components=tuple(ComponentReuse(component=c.component, kind=c.kind, n_tasks=c.n_tasks,
                                                 n_circuits=c.n_circuits, tasks=c.tasks) for c in counts),
                 tasks=tasks, circuits=ov.circuits, sizes=sizes, shared=shared, jaccard=jaccard)


def _collapsed_reuse(cat: Catalog, model: str, kinds: tuple[NodeKind, ...]) -> Reuse:
    """`reuse` over components, positions and roles collapsed, from one membership fetch."""
    m = cat.membership(model=model, kinds=kinds)
    if not m.circuits:
        raise NotFoundError(f"No circuits on model '{model}'.")
    sets = {cid: frozenset(component_of(n) for n in nodes) for cid, nodes in m.circuits.items()}
    where: dict[str, set[int]] = {}
    for cid, comps in sets.items():
        for comp in comps:
            where.setdefault(comp, set()).add(cid)
    counts = [ComponentReuse(component=comp, kind=parse_node(comp).kind.value,
                             n_tasks=len({m.tasks[c] for c in cids}), n_circuits=len(cids),
                             tasks=tuple(sorted({m.tasks[c] for c in cids})))
              for comp, cids in where.items()]
    counts.sort(key=lambda c: (-c.n_tasks, -c.n_circuits, c.component))
    newest: dict[str, int] = {}
    for cid, task in m.tasks.items():
        newest[task] = max(cid, newest.get(task, 0))
    tasks = tuple(sorted(newest))
    sizes, shared, jaccard = _matrix([sets[newest[t]] for t in tasks])
    return Reuse(model=model, kinds=tuple(k.value for k in kinds), components=tuple(counts), tasks=tasks,
                 circuits={t: newest[t] for t in tasks}, sizes=sizes, shared=shared, jaccard=jaccard)


def _matrix(chosen: list[frozenset[str]]) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...],
                                                   tuple[tuple[float | None, ...], ...]]:
    """(sizes, shared counts, Jaccard) of every pair of component sets."""
    sizes = tuple(len(a) for a in chosen)
    shared = tuple(tuple(len(a & b) for b in chosen) for a in chosen)
    jaccard = tuple(tuple((len(a & b) / len(a | b)) if a | b else None for b in chosen) for a in chosen)
    return sizes, shared, jaccard


def _stable_reuse(cat: Catalog, model: str, kinds: tuple[NodeKind, ...], fraction: float) -> Reuse:
    from catalog.queries.stability import stability

    if not 0 < fraction <= 1:
        raise InvalidInputError(f"--stable takes a fraction of seeds in (0, 1], e.g. 0.5 (got {fraction}).")
    tasks = tuple(sorted({r.task for r in cat.circuits(model=model, source="discovery")}))
    if not tasks:
        raise NotFoundError(f"No discovered circuits on {model}: --stable compares seeds of discovered circuits.")
    per_task = {t: stability(cat, t, model=model).models[0] for t in tasks}
    sets = {t: frozenset(c for c in st.stable(fraction) if parse_node(c).kind in kinds) for t, st in per_task.items()}
    seeds_with = {t: {c.component: c.seeds for c in st.components} for t, st in per_task.items()}
    comps = sorted({c for s in sets.values() for c in s})
    rows = [ComponentReuse(component=c, kind=parse_node(c).kind.value,
                           n_tasks=sum(c in sets[t] for t in tasks),
                           n_circuits=sum(seeds_with[t].get(c, 0) for t in tasks if c in sets[t]),
                           tasks=tuple(t for t in tasks if c in sets[t])) for c in comps]
    rows.sort(key=lambda r: (-r.n_tasks, -r.n_circuits, r.component))
    sizes, shared, jaccard = _matrix([sets[t] for t in tasks])
    return Reuse(model=model, kinds=tuple(k.value for k in kinds), components=tuple(rows), tasks=tasks,
                 circuits={t: per_task[t].circuits[-1] for t in tasks}, sizes=sizes, shared=shared,
                 jaccard=jaccard, stable=fraction)


def find(cat: Catalog, component: str, model: str | None = None,
         collapse_positions: bool = False) -> list[FindHit]:
    """Every circuit containing `component` (any spelling `parse_component` reads), with its
    role and score there. An id without a position matches the component at every position
    and role; `collapse_positions` gives one hit per circuit, its score summed over them."""
    hits = cat.find(parse_component(component), model=model)
    if not collapse_positions:
        return hits
    merged: dict[int, FindHit] = {}
    for h in hits:
        old = merged.get(h.circuit_id)
        comp = component_of(h.node_id)
        if old is None:
            merged[h.circuit_id] = h.model_copy(update={"node_id": comp})
        else:
            score = None if old.score is None and h.score is None else (old.score or 0.0) + (h.score or 0.0)
            merged[h.circuit_id] = old.model_copy(update={"score": score})
    return list(merged.values())


@dataclass(frozen=True)
class OverlapMatrix:
    """All-pairs overlap of many circuits: ``shared[i, j]`` components in common and
    ``jaccard[i, j]`` (NaN when both sets are empty), in the order of ``ids``."""

    model: str
    ids: tuple[int, ...]
    tasks: tuple[str, ...]
    sizes: np.ndarray
    shared: np.ndarray
    jaccard: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """Plain lists for JSON (NaN becomes None)."""
        import numpy as np

        jac = [[None if np.isnan(v) else float(v) for v in row] for row in self.jaccard]
        return {"model": self.model, "ids": list(self.ids), "tasks": list(self.tasks),
                "sizes": self.sizes.tolist(), "shared": self.shared.tolist(), "jaccard": jac}


def pairwise_overlap(cat: Catalog, model: str | None = None, kinds: Iterable[NodeKind | str] | None = None,
                     circuit_ids: Iterable[int] | None = None) -> OverlapMatrix:
    """Jaccard overlap between every pair of circuits on one model, from one membership query
    (no graphs loaded) and a sparse 0/1 matrix product. Leaves out input and logits by default."""
    import numpy as np

    model = only_model(cat, model)
    m = cat.membership(model=model, kinds=_kinds(kinds), circuit_ids=circuit_ids)
    ids = tuple(sorted(m.circuits))
    vocab = {comp: j for j, comp in enumerate(sorted(set().union(*m.circuits.values())))}
    member = np.zeros((len(ids), max(len(vocab), 1)), dtype=np.float32)
    for r, cid in enumerate(ids):
        member[r, [vocab[c] for c in m.circuits[cid]]] = 1.0
    shared = (member @ member.T).round().astype(np.int64)
    sizes = np.diag(shared).copy()
    union = sizes[:, None] + sizes[None, :] - shared
    with np.errstate(invalid="ignore", divide="ignore"):
        jaccard = np.where(union > 0, shared / np.maximum(union, 1), np.nan)
    return OverlapMatrix(model=model, ids=ids, tasks=tuple(m.tasks[c] for c in ids), sizes=sizes,
                         shared=shared, jaccard=jaccard)


def reuse_heatmap(result: Reuse, path: str | Path) -> Path:
    """Draw the task x task Jaccard matrix of `result` as a PNG heatmap at `path`."""
    try:
        import matplotlib
    except ImportError:
        raise InvalidInputError("Plotting needs matplotlib: pip install 'circuit-catalog[plot]'.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    if out.suffix.lower() != ".png":
        raise InvalidInputError(f"The heatmap is written as PNG; give a file name ending in .png, not '{out.name}'.")
    n = len(result.tasks)
    if n == 0:
        raise NotFoundError("There is no task to plot: the overlap matrix is empty.")
    values = [[float("nan") if v is None else v for v in row] for row in result.jaccard]
    side = max(3.5, 0.9 * n + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    try:
        image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(n), labels=list(result.tasks), rotation=45, ha="right")
        ax.set_yticks(range(n), labels=list(result.tasks))
        for i in range(n):
            for j in range(n):
                v = values[i][j]
                if v == v:  # not NaN
                    ax.text(j, i, f"{v:.2f}\n({result.shared[i][j]})", ha="center", va="center", fontsize=8,
                            color="black" if v > 0.6 else "white")
        fig.colorbar(image, ax=ax, label="Jaccard index")
        ax.set_title(f"Component overlap between tasks, {result.model}\n({', '.join(result.kinds)})")
        fig.tight_layout()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"Cannot write {out}: {exc.strerror}. Choose another path.") from None
        check_target(out)  # before drawing: a FIFO, device or folder is refused, not replaced
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=120)
        with atomic_output(out) as fh:
            fh.write(png.getvalue())
    finally:
        plt.close(fig)
    return out
