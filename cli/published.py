"""`catalog published list|load`: the circuits from the literature shipped with the package."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._common import JsonOpt, console, open_catalog, print_json, table

app = typer.Typer(help="Circuits from the literature shipped with the package.",
                  no_args_is_help=True)



@app.command("list")
def list_published(json_: JsonOpt = False) -> None:
    """List the shipped published circuits with their model, task, size and citation."""
    from catalog.published import published_circuits
    from catalog.views import PublishedInfo

    entries = [PublishedInfo.of(e) for e in published_circuits()]
    if json_:
        print_json(entries)
        return
    out = table("name", "task", "model", "heads", "mlps", "edges", "confidence", "arXiv")
    for e in entries:
        out.add_row(e.name, e.task, e.model, str(len(e.heads)), str(len(e.mlps)), str(e.edges),
                    e.confidence, e.arxiv)
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
    rows = {r.id: r for r in cat.circuits(source="published")}
    shown = [rows[a.id] for a in added if a.id in rows]
    if json_:
        print_json(shown)
        return
    for r in shown:
        note = " (already in the catalog)" if r.id in existing else ""
        console.print(f"circuit {r.id}: {r.name} ({r.task} on {r.model}){note}")
