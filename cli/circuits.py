"""Commands on single circuits: import, list, show, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from catalog.naming import NodeKind
from cli._common import JsonOpt, console, fmt_score, open_catalog, print_json, safe_text, table

if TYPE_CHECKING:  # pydantic-heavy; loaded only by the commands that need it
    from catalog.attention import AttentionPatterns
    from catalog.graph import CircuitGraph
    from catalog.provenance import Circuit

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", metavar="MODEL", help="Model name, e.g. gpt2-small.")]
AllowDuplicateOpt = Annotated[bool, typer.Option(
    "--allow-duplicate", help="Add circuits even when the same content is already in the catalog.")]
TaskOpt = Annotated[str | None, typer.Option("--task", "-t", metavar="TASK", help="Task name, e.g. ioi.")]
PromptOpt = Annotated[int | None, typer.Option(
    "--prompt", metavar="I", help="Prompt I's attribution graph (0-based), kept with a task's feature circuit.")]


def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="Circuit file (.gz is read transparently).")],
    format: Annotated[str | None, typer.Option(
        "--format", "-f", metavar="FORMAT", help="Force a format: catalog-json, eap-ig, circuit-tracer, graphml "
                               "(default: detect).")] = None,
    model: ModelOpt = None,
    task: TaskOpt = None,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="Name for the circuit.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", metavar="TAG", help="Tag to add (repeatable).")] = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", metavar="K", help="Store the K highest-|score| edges as the circuit instead "
                                     "of the file's own selection.")] = None,
    allow_duplicate: AllowDuplicateOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Import circuits from a file: the catalog's JSON, EAP-IG/MIB, circuit-tracer, GraphML.

    All the file's circuits are added in one transaction, or none. One already in the catalog
    (same content) is not added again unless --allow-duplicate is given."""
    from catalog.formats import import_file
    from catalog.views import Imported

    cat = open_catalog(ctx, create=True)
    added = import_file(cat, file, format=format, model=model, task=task, name=name,
                        tags=tuple(tag or ()), top_k=top_k, allow_duplicate=allow_duplicate)
    if json_:
        print_json(Imported(file=str(file), ids=tuple(a.id for a in added),
                            existing=tuple(a.id for a in added if a.duplicate)))
        return
    for a in added:
        if a.duplicate:
            console.print(f"circuit from {file} is already in the catalog as #{a.id}; not added again "
                          "(--allow-duplicate adds it anyway)")
        else:
            console.print(f"imported circuit {a.id} from {file}")


def list_(
    ctx: typer.Context,
    model: ModelOpt = None,
    task: TaskOpt = None,
    method: Annotated[str | None, typer.Option("--method", metavar="METHOD", help="Discovery method.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", metavar="TAG", help="Only circuits with this tag.")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", metavar="SOURCE", help="discovery, import or published.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List the circuits in the catalog (by id), optionally filtered."""
    rows = open_catalog(ctx).circuits(model=model, task=task, method=method, tag=tag, source=source)
    if json_:
        print_json(rows)
        return
    if not rows:
        console.print("no circuits (import some with `catalog import FILE` or "
                      "`catalog published load`).")
        return
    out = table("id", "name", "model", "task", "method", "nodes", "edges", "heads", "mlps",
                "faith.", "tags")
    for r in rows:
        faith = r.metrics.get("faithfulness") if r.metrics else None
        out.add_row(str(r.id), r.name or "-", r.model, r.task, r.method or str(r.source),
                    str(r.n_nodes), str(r.n_edges), str(r.n_heads), str(r.n_mlps),
                    fmt_score(faith), ",".join(r.tags))
    console.print(out)


def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="Circuit id, or a task name (its newest circuit).")],
    model: ModelOpt = None,
    edges: Annotated[int, typer.Option(
        "--edges", metavar="N", help="Also list the circuit's N highest-|score| edges.")] = 0,
    attention: Annotated[bool, typer.Option(
        "--attention", help="Also show what each head attends to from the answer position, on the "
                            "prompts kept with a discovered circuit.")] = False,
    prompt: PromptOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Show one circuit: provenance, selection rule, metrics, its nodes by kind with roles, the
    measured head roles and the interventions stored with it. A task's feature circuit keeps
    each prompt's attribution graph: --prompt I shows prompt I's."""
    from catalog.queries.features import prompt_graph_id
    from catalog.views import CircuitDetail
    from cli.analysis import render_intervention, render_roles

    cat = open_catalog(ctx)
    circuit = cat.get(prompt_graph_id(cat, ref, prompt, model) if prompt is not None else cat.resolve(ref, model=model))
    patterns = cat.attention(circuit.id) if attention and circuit.id is not None else None
    roles = cat.roles(circuit.id) if circuit.id is not None else None
    done = cat.interventions(circuit.id) if circuit.id is not None else []
    parts = cat.parts(circuit.id) if circuit.id is not None else []
    if json_:
        print_json(CircuitDetail.of(circuit, patterns, roles, done, parts))
        return
    render_circuit(circuit)
    if parts:
        console.print(f"per-prompt graphs: {len(parts)} (circuits #{parts[0]} to #{parts[-1]}); "
                      f"`catalog show {circuit.id} --prompt I` shows prompt I's (0 to {len(parts) - 1})")
    if edges > 0:
        _render_edges(circuit.graph, edges)
    if attention:
        _render_attention(patterns)
    if roles is not None:
        render_roles(roles)
    else:
        console.print("head roles: not measured (run `catalog roles REF`)")
    for result in done:
        render_intervention(result)


def delete(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(
        metavar="REF", help="Circuit id, task name (its newest circuit) or circuit name.")],
    model: ModelOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a circuit (its nodes, edges, annotations and tags) in one transaction, after
    showing what will go."""
    cat = open_catalog(ctx)
    s = cat.summary(cat.resolve(ref, model=model))
    what = (f"circuit {s.id}{f' {s.name!r}' if s.name else ''}: {s.task} on {s.model}, "
            f"{s.method or s.source}, {s.n_nodes} nodes and {s.n_edges} edges"
            + (f" of {s.n_scored_edges} scored" if s.n_scored_edges != s.n_edges else "")
            + (f", tags {', '.join(s.tags)}" if s.tags else "")
            + f", added {s.added_at:%Y-%m-%d %H:%M}")
    if not yes:
        typer.confirm(safe_text(f"Delete {what}?"), abort=True)
    cat.delete(s.id)
    console.print(f"deleted {what}")


# --- rendering --------------------------------------------------------------------------------


_METRICS = (("faithfulness", "faithfulness"), ("cpr", "CPR"), ("cmd", "CMD"))


def render_circuit(c: Circuit) -> None:
    """Print a circuit for people: what, where from, how selected, how good, which components."""
    p = c.provenance
    s = c.graph.summary()
    console.print(f"circuit {c.id}: {c.name or '-'}   task {c.task}   model {c.model}"
                  + (f" (revision {c.graph.shape.revision})" if c.graph.shape.revision else ""))
    console.print(f"  size: {s['nodes']} nodes ({s['heads']} heads, {s['mlps']} MLPs, "
                  f"{s['features']} features), {s['edges']} edges of {s['scored_edges']} scored")
    if c.tags:
        console.print(f"  tags: {', '.join(c.tags)}")
    console.print(f"  source: {p.source.value}"
                  + (f" ({p.source_format})" if p.source_format else "")
                  + (f" from {p.source_file}" if p.source_file else ""))
    _field("method", p.method and (p.method + (f" {_params(p.method_params)}" if p.method_params else "")))
    _field("selection", p.selection.describe() if p.selection else None)
    _field("ablation", p.ablation.value if p.ablation else None)
    _field("metric", p.metric)
    _field("dataset", p.dataset_hash and f"{p.dataset_hash} ({p.dataset_size} examples)")
    _field("seed", p.seed)
    _field("citation", p.citation)
    _field("notes", p.notes)
    _field("created", f"{p.created_at:%Y-%m-%d %H:%M} UTC by {p.created_by}")
    if p.library_versions:
        _field("versions", ", ".join(f"{k} {v}" for k, v in sorted(p.library_versions.items())))
    for key, label in _METRICS:
        if c.metrics.get(key) is not None:
            _field(label, fmt_score(c.metrics[key]))
    curve = c.metrics.get("faithfulness_curve")
    if curve:
        _field("faithfulness curve", "  ".join(f"{x:g}:{fmt_score(f, 2)}" for x, f in curve))
    _render_nodes(c.graph)


def _params(params: dict[str, object]) -> dict[str, object]:
    """Method parameters for one line: long lists and tables (an attribution graph's per-node
    values, its prompts) are summarised by their size; `show --json` has them whole."""
    def short(v: object) -> object:
        if isinstance(v, dict) and len(repr(v)) > 120:
            return f"<{len(v)} entries>"
        if isinstance(v, list) and len(repr(v)) > 120:
            return f"<{len(v)} items>"
        return v

    return {k: short(v) for k, v in params.items()}


def _field(label: str, value: object) -> None:
    if value is not None and value != "":
        console.print(f"  {label}: {value}", markup=False)


_KIND_TITLES = ((NodeKind.INPUT, "input"), (NodeKind.ATTENTION, "attention heads"),
                (NodeKind.MLP, "MLPs"), (NodeKind.FEATURE, "features"),
                (NodeKind.ERROR, "error nodes"), (NodeKind.LOGITS, "logits"))


def _render_nodes(g: CircuitGraph) -> None:
    from catalog.views import by_score

    roles, labels = g.roles(), g.labels()
    nodes = g.circuit_nodes
    for kind, title in _KIND_TITLES:
        of_kind = by_score([n for n in nodes if n.kind is kind])
        if not of_kind:
            continue
        console.print(f"{title} ({len(of_kind)}):")
        rows = table("id", "score", "role / label", padding=(0, 2, 0, 2))
        for n in of_kind:
            rows.add_row(n.id, fmt_score(n.score), roles.get(n.id) or labels.get(n.id) or "")
        console.print(rows)


def _render_edges(g: CircuitGraph, n: int) -> None:
    from catalog.views import by_score

    ranked = by_score(list(g.circuit_edges))
    console.print(f"edges ({min(n, len(ranked))} of {len(ranked)}, by |score|):")
    rows = table("edge", "score", padding=(0, 2, 0, 2))
    for e in ranked[:n]:
        rows.add_row(e.id, fmt_score(e.score))
    console.print(rows)


def _render_attention(patterns: AttentionPatterns | None) -> None:
    if patterns is None or not patterns.prompts:
        console.print("attention: none kept (only circuits found by `catalog discover` keep their "
                      "heads' attention patterns).")
        return
    console.print(f"attention from the answer position (top 3 tokens, {len(patterns.prompts)} prompts):")
    rows = table("head", *(f"prompt {i + 1}" for i in range(len(patterns.prompts))), padding=(0, 2, 0, 2))
    for head in patterns.heads:
        rows.add_row(head, *(", ".join(f"{tok}@{pos} {w:.2f}" for pos, tok, w in p.top(head))
                             for p in patterns.prompts))
    console.print(rows)
    for i, p in enumerate(patterns.prompts, start=1):
        console.print(f"  prompt {i}: {p.prompt}")
