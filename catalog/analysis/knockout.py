"""Knockout: ablate each task's circuit and measure every task, a task x task damage matrix.

Shared-component claims ("IOI and Colored Objects share heads a1.h0, a1.h1, a1.h3") are
overlaps of stored sets; this tests them causally. Row A, column B: the heads of task A's newest
circuit (its top-k by |score| when asked; its MLPs too when asked) are ablated together while
the model runs task B's prompts; the cell is B's relative metric drop and its accuracy before
and after. The ablation values come from B's own data (its counterfactual prompts by default),
so a row measures what A's components contribute to B, not a transplant of A's activations.
A position-resolved circuit is knocked out by its components, at every position (see
`components`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from catalog.analysis import context
from catalog.analysis.interventions import Target, edit_hooks, parse_target, plan
from catalog.analysis.positions import locate
from catalog.analysis.records import DamageCell, KnockoutMatrix, Outcome
from catalog.errors import InvalidInputError, NotFoundError
from catalog.naming import NodeKind, component_of
from catalog.provenance import Ablation
from catalog.tasks.base import parse_task_ref

if TYPE_CHECKING:
    from catalog.store import Catalog


def components(circuit: Any, top_k: int | None = None, with_mlps: bool = False) -> list[str]:
    """The heads of a circuit (the `top_k` by |score| if given), plus its MLPs if asked.

    A position-resolved circuit's nodes collapse to their components (``a1.h0@END`` and
    ``a1.h0@S2`` are ``a1.h0``, ranked by its best node), ablated at every position: roles are a
    task's own (IOI has no ``QOBJ``), so only components mean the same thing in every column.
    """
    heads = [n for n in circuit.graph.circuit_nodes if n.kind is NodeKind.ATTENTION]
    heads.sort(key=lambda n: -abs(n.score or 0.0))
    if top_k is not None and top_k < 1:
        raise InvalidInputError(f"--top-k must be at least 1, got {top_k}.")
    out = list(dict.fromkeys(component_of(n.id) for n in heads))[:top_k]
    if with_mlps:
        out += dict.fromkeys(component_of(n.id) for n in circuit.graph.circuit_nodes if n.kind is NodeKind.MLP)
    return out


def knockout(cat: Catalog, tasks: Sequence[str], model: str | None = None, top_k: int | None = None,
             with_mlps: bool = False, ablation: Ablation | str = Ablation.COUNTERFACTUAL,
             n: int = context.DEFAULT_N, seed: int = 0, device: str | None = None,
             loaded: Any = None, controls: int = 0) -> KnockoutMatrix:
    """The damage matrix over `tasks` (task names, optionally with options: ``ioi``,
    ``colored-objects:n_objects=5``); each row ablates the newest circuit of that task's name,
    options included (``ioi:variant=third-name``), or of its plain name when none was stored with
    those options.

    With `controls` > 0, a row ``random-K`` per distinct number K of heads a row ablates: the mean
    damage of `controls` sets of K heads drawn at random (seeded) from the whole model, the
    baseline a circuit's damage should be read against.
    """
    if len(tasks) < 1:
        raise InvalidInputError("Name the tasks to knock out, e.g. catalog reuse --knockout ioi colored-objects.")
    if len(set(tasks)) != len(tasks):
        raise InvalidInputError(f"A task is named twice in {', '.join(tasks)}; name each once.")
    try:
        ablation = Ablation(ablation)
    except ValueError:
        raise InvalidInputError(f"Unknown ablation '{ablation}'; use counterfactual, mean or zero.") from None
    circuits = {t: cat.get(_resolve(cat, t, model)) for t in tasks}
    names = {c.graph.shape.name for c in circuits.values()}
    if len(names) > 1:
        raise InvalidInputError(f"The circuits are over different models ({', '.join(sorted(names))}); "
                                "choose one with --model.")
    first = next(iter(circuits.values()))
    rows: dict[str, list[Target]] = {}
    for t, c in circuits.items():  # checked before the model loads
        comps = components(c, top_k, with_mlps)
        if not comps:
            raise InvalidInputError(f"Circuit #{c.id} ({t}) has no heads to knock out.")
        rows[t] = [parse_target(x, c.graph.shape) for x in comps]
    if controls < 0:
        raise InvalidInputError(f"--controls must be 0 or more, got {controls}.")
    loaded = loaded or context.model_for(first, model, device)
    shape = loaded.shape
    random_sets = _random_sets(shape, sorted({sum(t.head is not None for t in r) for r in rows.values()}), controls, seed)
    m = loaded.model
    cells = []
    for measured in tasks:
        ds, _ = context.build(loaded, measured, n, seed)
        before = context.outcome(m, ds)
        roles = locate(ds)
        for knocked, targets in rows.items():
            after = context.outcome(m, ds, edit_hooks(plan(m, ds, roles, ablate=targets, ablation=ablation)))
            cells.append(DamageCell(
                knocked_out=knocked, measured=measured, components=tuple(t.node for t in targets),
                before=before, after=after,
                metric_drop=_drop(before.metric, after.metric), accuracy_drop=before.accuracy - after.accuracy))
        for label, sets in random_sets.items():
            outs = [context.outcome(m, ds, edit_hooks(plan(m, ds, roles, ablate=ts, ablation=ablation))) for ts in sets]
            after = Outcome(metric=sum(o.metric for o in outs) / len(outs),
                            accuracy=sum(o.accuracy for o in outs) / len(outs))
            cells.append(DamageCell(
                knocked_out=label, measured=measured, components=tuple(t.node for ts in sets for t in ts),
                before=before, after=after, metric_drop=sum(_drop(before.metric, o.metric) for o in outs) / len(outs),
                accuracy_drop=before.accuracy - after.accuracy))
    return KnockoutMatrix(model=shape.name, ablation=ablation.value, n=n, seed=seed, tasks=tuple(tasks),
                          circuits={t: int(c.id) for t, c in circuits.items() if c.id is not None},
                          cells=tuple(cells), controls=tuple(random_sets))


def _resolve(cat: Catalog, task: str, model: str | None) -> int:
    """The newest circuit stored under `task` with its options (``ioi:variant=third-name``), or,
    when there is none, under its plain name (a Colored Objects circuit for
    ``colored-objects:n_objects=5``)."""
    from catalog.tasks import get_task
    from catalog.tasks.base import task_name

    slug, options = parse_task_ref(task)
    spec = get_task(slug)
    try:
        return cat.resolve(task_name(spec.slug, spec, options), model=model)
    except NotFoundError:
        if not options:
            raise
        return cat.resolve(spec.slug, model=model)


def _drop(before: float, after: float) -> float:
    """Relative drop of a metric: (before - after) / |before| (0 when before is 0)."""
    return (before - after) / abs(before) if before else 0.0


def _random_sets(shape: Any, sizes: Sequence[int], count: int, seed: int) -> dict[str, list[list[Target]]]:
    """``{"random-K": [count sets of K heads]}``, drawn with a seeded generator."""
    import random

    if count == 0:
        return {}
    rng = random.Random(seed)
    heads = [f"a{layer}.h{h}" for layer in range(shape.n_layers) for h in range(shape.n_heads)]
    return {f"random-{k}": [[parse_target(x, shape) for x in sorted(rng.sample(heads, min(k, len(heads))))]
                            for _ in range(count)] for k in sizes}
