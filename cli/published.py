"""`catalog published list|load`: the circuits from the literature shipped with the package."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._common import console, open_catalog, print_json, table

app = typer.Typer(help="Circuits from the literature shipped with the package.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command("list")
def list_published(json_: JsonOpt = False) -> None:
    """List the shipped published circuits with their model, task, size and citation."""
    from catalog.published import published_circuits

    entries = published_circuits()
    if json_:
        print_json([{"name": e.name, "task": e.circuit.task, "model": e.circuit.model,
                     "confidence": e.confidence, "heads": sorted(e.circuit.graph.heads),
                     "mlps": sorted(e.circuit.graph.mlps),
                     "arxiv": e.arxiv, "citation": e.circuit.provenance.citation,
                     "file": e.file}
                    for e in entries])
        return
    out = table("name", "task", "model", "heads", "mlps", "confidence", "arXiv")
    for e in entries:
        g = e.circuit.graph
        out.add_row(e.name, e.circuit.task, e.circuit.model, str(len(g.heads)),
                    str(len(g.mlps)), e.confidence, e.arxiv)
    console.print(out)


@app.command("load")
def load(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(
        metavar="NAME", help="Names to load (default: all; see `catalog published list`).")] = None,
    allow_duplicate: Annotated[bool, typer.Option(
        "--allow-duplicate", help="Add them again even when already in the catalog.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Load the published circuits into the catalog in one transaction; loading again adds
    nothing new (each one already there is named with its id)."""
    from catalog.published import load_published

    cat = open_catalog(ctx, create=True)
    added = load_published(cat, names or None, allow_duplicate=allow_duplicate)
    existing = {a.id for a in added if a.duplicate}
    rows = {r.id: r for r in cat.list(source="published")}
    shown = [rows[a.id] for a in added if a.id in rows]
    if json_:
        print_json([{"id": r.id, "name": r.name, "task": r.task, "model": r.model,
                     "already_loaded": r.id in existing} for r in shown])
        return
    for r in shown:
        note = " (already in the catalog)" if r.id in existing else ""
        console.print(f"circuit {r.id}: {r.name} ({r.task} on {r.model}){note}")
