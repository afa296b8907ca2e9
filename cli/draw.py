"""`catalog draw`: a layered picture of a circuit (or of two, compared) as SVG, PNG or PDF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli._common import console, open_catalog


def draw(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(
        metavar="REF", help="Circuit id, task name (its newest circuit) or circuit name.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE.svg|.png|.pdf",
        help="File to write; the suffix chooses the format (default: circuit-ID.svg).")] = None,
    compare: Annotated[str | None, typer.Option(
        "--compare", metavar="OTHER", help="A second circuit: colour shared components and those "
                                           "only in one of the two.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL", help="Model, when a task name is ambiguous.")] = None,
) -> None:
    """Draw a circuit by layer: input at the bottom, logits at the top, heads and MLPs by layer."""
    from catalog.draw import draw as run

    cat = open_catalog(ctx)
    circuit = cat.get(cat.resolve(ref, model=model))
    other = cat.get(cat.resolve(compare, model=model)) if compare is not None else None
    written = run(circuit, output or Path(f"circuit-{circuit.id}.svg"), compare=other)
    console.print(f"drew circuit {circuit.id} ({circuit.task} on {circuit.model})"
                  + (f" against circuit {other.id}" if other is not None else "") + f" to {written}")
