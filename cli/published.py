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
    json_: JsonOpt = False,
) -> None:
    """Load the published circuits into the catalog; loading again adds nothing new."""
    from catalog.published import load_published

    cat = open_catalog(ctx)
    ids = load_published(cat, names or None)
    rows = cat.list(source="published")
    shown = [r for r in rows if r.id in set(ids)]
    if json_:
        print_json([{"id": r.id, "name": r.name, "task": r.task, "model": r.model} for r in shown])
        return
    for r in sorted(shown, key=lambda r: r.id):
        console.print(f"circuit {r.id}: {r.name} ({r.task} on {r.model})")
