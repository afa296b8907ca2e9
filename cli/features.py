"""`catalog features`: feature circuits (attribution graphs) next to head circuits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli._common import JsonOpt, console, fmt_score, open_catalog, print_json, table

if TYPE_CHECKING:
    from catalog.analysis.feature_heads import FeatureHeadRelation, HeadLink

app = typer.Typer(help="Feature circuits (attribution graphs) next to head circuits.", no_args_is_help=True)


@app.command("relate")
def relate(
    ctx: typer.Context,
    feature_circuit: Annotated[str, typer.Argument(
        metavar="FEATURE_CIRCUIT", help="A task's feature circuit: id, task name or circuit name.")],
    head_circuit: Annotated[str, typer.Argument(
        metavar="HEAD_CIRCUIT", help="A head circuit of the same task: id, task name or circuit name.")],
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL", help="The circuits' model, when a task has circuits on several.")] = None,
    top: Annotated[int, typer.Option("--top", metavar="N", help="Features to relate, most influential first.")] = 10,
    feature: Annotated[list[str] | None, typer.Option(
        "--feature", metavar="FEATURE", help="Relate this feature instead of the top N (repeatable): f1.275@END[tc] "
                                             "at one role, f1.275[tc] at each of its roles.")] = None,
    transcoders: Annotated[str | None, typer.Option(
        "--transcoders", metavar="PATH", help="The transcoder set the feature circuit was found with "
                                              "(default: the one its provenance names).")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", metavar="DEVICE", help="cpu, cuda, ... (default: CUDA when present).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Which heads write to and read from a feature circuit's top features, on the circuit's own
    prompts in the attribution graph's frozen model: a head writes a feature by its direct
    contribution to the feature's pre-activation, and reads it by the share of the feature's
    direct effect on the target logit that passes through the head first. The heads of
    HEAD_CIRCUIT are marked with *."""
    from catalog.analysis.feature_heads import relate as run

    result = run(open_catalog(ctx), feature_circuit, head_circuit, model=model, top=top,
                 transcoders=transcoders, device=device, features=tuple(feature or ()))
    if json_:
        print_json(result)
        return
    render_relation(result)


def _links(links: tuple[HeadLink, ...], reads: bool) -> str:
    return ", ".join(f"{link.head}{'*' if link.in_head_circuit else ''} {fmt_score(link.reads if reads else link.writes)}"
                     for link in links) or "-"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def render_relation(r: FeatureHeadRelation) -> None:
    """The top features with their writers and readers, every head's totals, and the shares."""
    f, h = r.feature_circuit, r.head_circuit
    console.print(f"feature circuit #{f.id} ({f.task}, {f.features} features) and head circuit #{h.id} "
                  f"({h.task}, {h.method or '-'}, {h.heads} heads); {r.prompts} prompts, transcoders {r.transcoders}")
    console.print("writes: direct contribution to the feature's pre-activation; reads: its direct effect on "
                  "the target logit through the head first (mean over prompts; * = in the head circuit)")
    out = table("feature", "influence", "prompts", "written by", "read by", "edge (direct)", "label",
                padding=(0, 2, 0, 2))
    for x in r.features:
        out.add_row(x.feature, fmt_score(x.influence), str(x.prompts), _links(x.writers, False),
                    _links(x.readers, True), f"{fmt_score(x.edge)} ({fmt_score(x.direct)})", x.label or "")
    console.print(out)
    out = table("head", "in head circuit", "|writes|", "|reads|", padding=(0, 2, 0, 2))
    for t in r.heads:
        out.add_row(t.head, "yes" if t.in_head_circuit else "", fmt_score(t.writes), fmt_score(t.reads))
    console.print(out)
    console.print(f"the head circuit's heads ({_pct(r.head_share)} of the model's heads) hold {_pct(r.write_share)} "
                  f"of the writes into these features and {_pct(r.read_share)} of the reads from them")
