"""`catalog export`: write a stored circuit as GraphML, the catalog's JSON, EAP-IG JSON or a
circuit-tracer graph."""

from __future__ import annotations

import io
import sys
from typing import Annotated

import typer

from cli._common import console, open_catalog


def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(
        metavar="REF", help="Circuit id, task name (its newest circuit) or circuit name.")],
    format: Annotated[str, typer.Option(
        "--format", "-f", metavar="FORMAT",
        help="graphml (Gephi, Cytoscape), json (the catalog's, round-trips exactly), eap-ig "
             "(EAP-IG's Graph.from_json) or circuit-tracer (circuit-tracer's and Neuronpedia's "
             "graph viewers).")],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="FILE",
        help="File to write (.gz compresses); - or none: standard output.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL", help="Model, when a task name is ambiguous.")] = None,
    all_edges: Annotated[bool, typer.Option(
        "--all-edges", help="GraphML: write every scored node and edge, not only the circuit.")] = False,
    prompt: Annotated[int | None, typer.Option(
        "--prompt", metavar="I", help="Export prompt I's attribution graph (0-based), kept with a task's "
                                      "feature circuit (e.g. for --format circuit-tracer).")] = None,
) -> None:
    """Export a circuit to a file for Gephi, Cytoscape, EAP-IG or another catalog."""
    from catalog.formats import write_circuit
    from catalog.queries.features import prompt_graph_id

    cat = open_catalog(ctx)
    circuit = cat.get(prompt_graph_id(cat, ref, prompt, model) if prompt is not None else cat.resolve(ref, model=model))
    if output is not None and output != "-":
        write_circuit(circuit, format, output, all_edges=all_edges)
        console.print(f"wrote circuit {circuit.id} ({circuit.task} on {circuit.model}) to {output}")
        return
    buffer = io.StringIO()  # written whole, so a failed export prints nothing
    write_circuit(circuit, format, buffer, all_edges=all_edges)
    text = buffer.getvalue()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
