"""`catalog compare`, `reuse` and `find`: what circuits share, and where a component appears."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli._common import JsonOpt, console, fmt_score, open_catalog, print_json, table

if TYPE_CHECKING:
    from catalog.analysis.records import KnockoutMatrix
    from catalog.queries import Comparison, Component, Reuse
    from catalog.queries.compare import Overlaps
    from catalog.queries.features import FeatureOverlap, FeatureReuse, FeatureWeight, HeadLevel

ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="MODEL", help="Model whose circuits to use, e.g. gpt2-small.")]
CollapseOpt = Annotated[bool, typer.Option(
    "--collapse-positions", help="Count components, not (component, role) nodes, in "
                                 "position-resolved circuits (a1.h0@END and a1.h0@S2 are a1.h0).")]


def compare(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="Circuit id, task name or circuit name.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Circuit id, task name or circuit name.")],
    model: ModelOpt = None,
    matched_k: Annotated[int | None, typer.Option(
        "--matched-k", metavar="K", help="Also compare both cut to the same size: top K edges by "
                                         "|score| (or top K components when unscored).")] = None,
    include_io: Annotated[bool, typer.Option(
        "--include-io", help="Count the input and logits nodes as shared components.")] = False,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", help="Components to list per group (0: all).")] = 25,
    role: Annotated[str | None, typer.Option(
        "--role", metavar="ROLE", help="Compare only the nodes at this role of position-resolved "
                                       "circuits (e.g. END).")] = None,
    collapse_positions: CollapseOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Compare two circuits: sizes, Jaccard and overlap coefficient over nodes, heads, MLPs and
    edges, score-weighted overlap, shared and exclusive components with their roles."""
    from catalog.queries import compare as run

    result = run(open_catalog(ctx), a, b, model=model, matched_k=matched_k, include_io=include_io,
                 role=role, collapse_positions=collapse_positions)
    if json_:
        print_json(result)
        return
    render_comparison(result, limit)


def reuse(
    ctx: typer.Context,
    model: ModelOpt = None,
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", metavar="KIND", help="Component kinds to count (repeatable): attention, mlp, "
                                       "feature, error, input, logits. Default: all but input "
                                       "and logits.")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", metavar="FILE.png", help="Draw the task x task overlap as a heatmap.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", help="Components to list (0: all).")] = 25,
    collapse_positions: CollapseOpt = False,
    stable: Annotated[float | None, typer.Option(
        "--stable", metavar="FRACTION", help="Keep only components found in at least this fraction "
                                             "of each task's seeds (discovered circuits; see "
                                             "`catalog stability`).")] = None,
    knockout: Annotated[bool, typer.Option(
        "--knockout", help="Test reuse causally: ablate each named task's circuit and measure every "
                           "named task (a damage matrix; runs the model).")] = False,
    tasks: Annotated[list[str] | None, typer.Argument(
        metavar="TASK", help="With --knockout: the tasks (ioi colored-objects ...; options as in "
                                  "colored-objects:n_objects=5).", show_default=False)] = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", metavar="K", help="With --knockout: ablate only each circuit's K highest-|score| heads.")] = None,
    with_mlps: Annotated[bool, typer.Option(
        "--with-mlps", help="With --knockout: ablate the circuit's MLPs too (default: heads only).")] = False,
    controls: Annotated[int, typer.Option(
        "--controls", metavar="C", help="With --knockout: also ablate C random head sets of each row's size "
                                        "(rows random-K: the baseline to read damage against).")] = 0,
    features: Annotated[bool, typer.Option(
        "--features", help="Compare the tasks' feature circuits (attribution graphs): features shared, "
                           "counted and weighted by influence, with the head circuits' overlap beside it.")] = False,
    n: Annotated[int, typer.Option("--n", metavar="N", help="With --knockout: examples per task.")] = 128,
    seed: Annotated[int, typer.Option("--seed", metavar="SEED", help="With --knockout: dataset seed.")] = 0,
    json_: JsonOpt = False,
) -> None:
    """Component reuse across tasks: for each component, how many tasks' circuits contain it,
    and the task x task overlap matrix (newest circuit per task). With --features: the tasks'
    feature circuits' overlap, plain and influence-weighted, with their head circuits' beside it.
    With --knockout TASK...: the task x task damage matrix of ablating each task's circuit."""
    if tasks and not knockout:
        from catalog.errors import InvalidInputError

        raise InvalidInputError(f"Tasks ({', '.join(tasks)}) are only taken with --knockout; add it, or drop them.")
    if knockout and features:
        from catalog.errors import InvalidInputError

        raise InvalidInputError("Give --knockout or --features, not both.")
    if knockout:
        _knockout(ctx, tasks or [], model, top_k, with_mlps, controls, n, seed, json_)
        return
    if features:
        _feature_reuse(ctx, model, collapse_positions, bool(kind or plot or stable is not None), limit, json_)
        return
    from catalog.queries import reuse as run
    from catalog.queries import reuse_heatmap

    result = run(open_catalog(ctx), model=model, kinds=kind or None, stable=stable,
                 collapse_positions=collapse_positions)
    written = reuse_heatmap(result, plot) if plot is not None else None
    if json_:
        print_json(result.model_copy(update={"plot": str(written) if written else None}))
        return
    render_reuse(result, limit)
    if written is not None:
        console.print(f"heatmap written to {written}")


def _feature_reuse(ctx: typer.Context, model: str | None, collapse: bool, other: bool, limit: int,
                   json_: bool) -> None:
    from catalog.errors import InvalidInputError
    from catalog.queries.features import feature_reuse

    if other:
        raise InvalidInputError("--features compares feature circuits by themselves: drop --kind, --plot and --stable.")
    result = feature_reuse(open_catalog(ctx), model=model, collapse_positions=collapse)
    if json_:
        print_json(result)
        return
    render_feature_reuse(result, limit)


def _knockout(ctx: typer.Context, tasks: list[str], model: str | None, top_k: int | None,
              with_mlps: bool, controls: int, n: int, seed: int, json_: bool) -> None:
    from catalog.analysis.knockout import knockout as run
    from catalog.errors import InvalidInputError

    if not tasks:
        raise InvalidInputError("--knockout needs the tasks to test, e.g. catalog reuse --knockout ioi colored-objects.")
    result = run(open_catalog(ctx), tasks, model=model, top_k=top_k, with_mlps=with_mlps, n=n, seed=seed,
                 controls=controls)
    if json_:
        print_json(result)
        return
    render_knockout(result)


def find(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(
        metavar="COMPONENT", help="a9.h9, m10, a1.h0@END (at one role), f3.1200[clt], or a peer "
                                  "spelling (A9.9, L9H9, blocks.9.attn.hook_result[9]).")],
    model: ModelOpt = None,
    collapse_positions: CollapseOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Every circuit containing a component, with its role and score there."""
    from catalog.queries import find as run

    hits = run(open_catalog(ctx), component, model=model, collapse_positions=collapse_positions)
    if json_:
        print_json(hits)
        return
    if not hits:
        console.print(f"no circuit contains {component}" + (f" on {model}" if model else "") + ".")
        return
    out = table("circuit", "name", "model", "task", "method", "node", "score", "role")
    for h in hits:
        out.add_row(str(h.circuit_id), h.circuit_name or "-", h.model, h.task, h.method or "-",
                    h.node_id, fmt_score(h.score), h.role or h.label or "")
    console.print(out)


# --- rendering --------------------------------------------------------------------------------


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _overlap_table(o: Overlaps) -> None:
    out = table("", "shared", "|A|", "|B|", "Jaccard", "overlap coef.")
    rows = [("nodes", o.nodes), ("heads", o.heads), ("MLPs", o.mlps)]
    rows += [("features", o.features)] if o.features is not None else []
    rows += [("edges", o.edges)]
    for label, s in rows:
        out.add_row(label, str(s.shared), str(s.size_a), str(s.size_b), _ratio(s.jaccard),
                    _ratio(s.overlap))
    console.print(out)
    console.print(f"score-weighted overlap: {_ratio(o.weighted)}")


def _components(title: str, items: tuple[Component, ...], limit: int, both: bool) -> None:
    console.print(f"{title} ({len(items)}):")
    shown = items if limit <= 0 else items[:limit]
    for c in shown:
        roles = [r for r in ((c.role_a, c.role_b) if both else (c.role_a or c.role_b,)) if r]
        if both and c.role_a and c.role_b and c.role_a == c.role_b:
            roles = [c.role_a]
        console.print(f"  {c.id:<12} {' / '.join(roles)}".rstrip())
    if len(shown) < len(items):
        console.print(f"  ... and {len(items) - len(shown)} more (--limit 0 lists all)")


def render_comparison(r: Comparison, limit: int) -> None:
    """Print a comparison for people; every figure says the circuit sizes it was measured at."""
    for label, s in (("A", r.a), ("B", r.b)):
        console.print(f"{label}: circuit {s.id}{' ' + s.name if s.name else ''} ({s.task} on {s.model}"
                      f"{', ' + s.method if s.method else ''}): {s.nodes} nodes, {s.heads} heads, "
                      f"{s.mlps} MLPs, {s.features} features, {s.edges} edges")
    if not r.include_io:
        console.print("(input and logits are left out of the node counts; --include-io counts them)")
    if r.role or r.collapse_positions:
        how = [f"nodes at role {r.role}"] if r.role else []
        how += ["positions collapsed to components"] if r.collapse_positions else []
        console.print(f"(compared: {', '.join(how)})")
    _overlap_table(r)
    _components("shared", r.shared, limit, both=True)
    _components("only in A", r.only_a, limit, both=False)
    _components("only in B", r.only_b, limit, both=False)
    if r.feature_level is not None:
        render_feature_overlap(r.feature_level, limit)
    if r.head_level is not None:
        render_head_level(r.head_level)
    if r.matched is not None:
        m = r.matched
        console.print(f"\nat a matched size: top {m.k} {m.unit} by |score| in each")
        _overlap_table(m)
        _components("shared", m.shared, limit, both=True)


def render_reuse(r: Reuse, limit: int) -> None:
    """Print the reuse counts and the task x task matrix (Jaccard, with shared counts)."""
    console.print(f"model {r.model}; components counted: {', '.join(r.kinds)}")
    if not r.tasks:
        console.print("no circuits on this model.")
        return
    if r.stable is not None:
        console.print(f"task x task overlap of the components found in at least {r.stable:g} of each "
                      "task's seeds: Jaccard (shared components)")
    else:
        console.print("task x task overlap, newest circuit per task: Jaccard (shared components)")
    matrix = table("", *r.tasks)
    for i, t in enumerate(r.tasks):
        matrix.add_row(f"{t} #{r.circuits[t]} ({r.sizes[i]})",
                       *(f"{_ratio(r.jaccard[i][j])} ({r.shared[i][j]})"
                         for j in range(len(r.tasks))))
    console.print(matrix)
    ranked = sorted(r.components, key=lambda c: (-c.n_tasks, -c.n_circuits, c.component))
    shown = ranked if limit <= 0 else ranked[:limit]
    console.print(f"components by number of tasks ({len(ranked)} in all):")
    out = table("component", "kind", "tasks", "circuits", "task names")
    for c in shown:
        out.add_row(c.component, c.kind, str(c.n_tasks), str(c.n_circuits), ", ".join(c.tasks))
    console.print(out)
    if len(shown) < len(ranked):
        console.print(f"... and {len(ranked) - len(shown)} more (--limit 0 lists all)")


def render_knockout(r: KnockoutMatrix) -> None:
    """The damage matrix: rows ablated, columns measured; relative metric drop and accuracy."""
    console.print(f"knockout on {r.model} ({r.ablation} ablation, {r.n} examples per task, seed {r.seed}): "
                  "rows = circuit ablated, columns = task measured")
    for t in r.tasks:
        c = r.cell(t, t)
        console.print(f"  {t}: circuit {r.circuits.get(t)}, ablating {', '.join(c.components)}")
    console.print("relative metric drop (1.0 = all of it; negative = the metric rose):")
    out = table("ablated \\ measured", *r.tasks)
    for a in (*r.tasks, *r.controls):
        out.add_row(a, *[f"{r.cell(a, b).metric_drop:.2f}" for b in r.tasks])
    console.print(out)
    console.print("accuracy before -> after:")
    out = table("ablated \\ measured", *r.tasks)
    for a in (*r.tasks, *r.controls):
        out.add_row(a, *[f"{100 * r.cell(a, b).before.accuracy:.0f}% -> {100 * r.cell(a, b).after.accuracy:.0f}%"
                         for b in r.tasks])
    console.print(out)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def render_feature_overlap(f: FeatureOverlap, limit: int) -> None:
    """The feature-level figures of two feature circuits, and their shared features by influence."""
    c = f.counts
    how = "positions collapsed to features" if f.collapsed else "per role"
    console.print(f"\nfeature level ({how}): {c.shared} shared of {c.size_a} and {c.size_b} features, "
                  f"Jaccard {_ratio(c.jaccard)}, overlap coef. {_ratio(c.overlap)}")
    console.print(f"influence-weighted Jaccard (sum min / sum max): {_ratio(f.weighted)}; the shared features "
                  f"carry {_pct(f.shared_mass_a)} of A's feature influence and {_pct(f.shared_mass_b)} of B's")
    _feature_rows("shared features", f.shared, limit)
    _feature_rows("only in A", f.only_a, min(limit, 10) if limit > 0 else limit)
    _feature_rows("only in B", f.only_b, min(limit, 10) if limit > 0 else limit)


def _feature_rows(title: str, rows: tuple[FeatureWeight, ...], limit: int) -> None:
    console.print(f"{title} ({len(rows)}):")
    shown = rows if limit <= 0 else rows[:limit]
    if shown:
        out = table("feature", "influence A", "influence B", "prompts A", "prompts B", "label", padding=(0, 2, 0, 2))
        for w in shown:
            out.add_row(w.id, fmt_score(w.influence_a), fmt_score(w.influence_b), _pct(w.fraction_a),
                        _pct(w.fraction_b), w.label or "")
        console.print(out)
    if len(shown) < len(rows):
        console.print(f"  ... and {len(rows) - len(shown)} more (--limit 0 lists all)")


def render_head_level(h: HeadLevel) -> None:
    """The two tasks' head circuits compared beside their feature circuits."""
    if h.missing or h.a is None or h.b is None or h.heads is None:
        console.print(f"head level: no head circuit for {', '.join(h.missing)} on this model (discover one "
                      f"with `catalog discover --task {h.missing[0] if h.missing else 'TASK'}`)")
        return
    s = h.heads
    console.print(f"head level (head circuits #{h.a.id} {h.a.task}, #{h.b.id} {h.b.task}; heads, positions "
                  f"collapsed): {s.shared} shared of {s.size_a} and {s.size_b}, Jaccard {_ratio(s.jaccard)}, "
                  f"score-weighted {_ratio(h.weighted)}" + (f": {', '.join(h.shared)}" if h.shared else ""))


def render_feature_reuse(r: FeatureReuse, limit: int) -> None:
    """Feature overlap between tasks, counted and influence-weighted, with the head level beside it."""
    how = "positions collapsed to features" if r.collapsed else "per role"
    console.print(f"model {r.model}; newest feature circuit per task ({how})")
    out = table("", *r.tasks)
    for i, t in enumerate(r.tasks):
        out.add_row(f"{t} #{r.circuits[t]} ({r.sizes[i]})",
                    *(f"{_ratio(r.jaccard[i][j])} ({r.shared[i][j]}), w {_ratio(r.weighted[i][j])}"
                      for j in range(len(r.tasks))))
    console.print("features: Jaccard (shared), w = influence-weighted Jaccard")
    console.print(out)
    if r.head_circuits:
        out = table("", *r.tasks)
        for i, t in enumerate(r.tasks):
            label = f"{t} #{r.head_circuits[t]}" if t in r.head_circuits else f"{t} (none)"
            out.add_row(label, *(f"{_ratio(r.head_jaccard[i][j])}, w {_ratio(r.head_weighted[i][j])}"
                                 for j in range(len(r.tasks))))
        console.print("head circuits of the same tasks: Jaccard over heads, w = score-weighted")
        console.print(out)
    else:
        console.print("head level: no task has a head circuit on this model.")
    shown = r.features if limit <= 0 else r.features[:limit]
    console.print(f"features by number of tasks ({len(r.features)} in all):")
    rows = table("feature", "tasks", "influence per task", "label", padding=(0, 2, 0, 2))
    for f in shown:
        rows.add_row(f.feature, str(f.n_tasks), ", ".join(f"{t} {fmt_score(v)}" for t, v in f.influence.items()),
                     f.label or "")
    console.print(rows)
    if len(shown) < len(r.features):
        console.print(f"... and {len(r.features) - len(shown)} more (--limit 0 lists all)")
