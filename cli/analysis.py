"""`catalog roles`, `intervene` and `repair`: measure what a circuit's heads do, and edit them.

Thin: parse options, call one `catalog.analysis` function (which imports torch), render.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli._common import console, fmt_score, open_catalog, print_json, table

if TYPE_CHECKING:
    from catalog.analysis.records import InterventionResult, RepairResult, RoleReport

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
RefArg = Annotated[str, typer.Argument(metavar="REF", help="Circuit id, or a task name (its newest circuit).")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="MODEL", help="The circuit's model, when a task has circuits on several.")]
NOpt = Annotated[int, typer.Option("--n", metavar="N", help="Examples to measure on.")]
SeedOpt = Annotated[int, typer.Option("--seed", metavar="SEED", help="Dataset seed.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", metavar="DEVICE", help="cpu, cuda, ... (default: CUDA when present).")]


def roles(
    ctx: typer.Context,
    ref: RefArg,
    model: ModelOpt = None,
    task: Annotated[str | None, typer.Option(
        "--task", "-t", metavar="TASK", help="Measure on this task (default: the circuit's), e.g. "
                                             "colored-objects:n_objects=5.")] = None,
    n: NOpt = 128,
    seed: SeedOpt = 0,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Measure each head's role in a circuit (attention between roles, direct logit attribution,
    OV copying and composition scores), label it from those numbers, and store it."""
    from catalog.analysis.roles import measure_roles

    report = measure_roles(open_catalog(ctx), ref, model=model, task=task, n=n, seed=seed, device=device)
    if json_:
        print_json(report)
        return
    render_roles(report)


def intervene(
    ctx: typer.Context,
    ref: RefArg,
    ablate: Annotated[list[str] | None, typer.Option(
        "--ablate", metavar="COMPONENT", help="Ablate a head or MLP (a1.h1, m0, a1.h0@END; repeatable).")] = None,
    patch: Annotated[list[str] | None, typer.Option(
        "--patch", metavar="COMPONENT", help="Patch a head or MLP from the counterfactual prompts, or from "
                                             "--from TASK's prompts (a1.h0@END; repeatable).")] = None,
    patch_from: Annotated[str | None, typer.Option(
        "--from", metavar="TASK", help="Take --patch values from this task's clean prompts.")] = None,
    scale: Annotated[list[str] | None, typer.Option(
        "--scale", metavar="COMPONENT=FACTOR", help="Multiply a head's or MLP's output (a2.h1=2.0; repeatable).")] = None,
    ablation: Annotated[str, typer.Option(
        "--ablation", metavar="ABLATION", help="What --ablate writes: counterfactual, mean or zero.")] = "counterfactual",
    model: ModelOpt = None,
    n: NOpt = 128,
    seed: SeedOpt = 0,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Ablate, patch or scale components; print the task's metric and accuracy before and after,
    and store the result with the circuit."""
    from catalog.analysis.interventions import intervene as run

    result = run(open_catalog(ctx), ref, model=model, ablate=ablate or (), patch=patch or (),
                 patch_from=patch_from, scale=scale or (), ablation=ablation, n=n, seed=seed, device=device)
    if json_:
        print_json(result)
        return
    render_intervention(result)


def repair(
    ctx: typer.Context,
    task: Annotated[str, typer.Option(
        "--task", "-t", metavar="TASK", help="The failing task, e.g. colored-objects:n_objects=5.")],
    working: Annotated[str, typer.Option(
        "--from", metavar="TASK", help="The working task whose wrong-answer heads to reuse, e.g. ioi.")],
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL", help="Model (default: the embedded model).")] = None,
    heads: Annotated[list[str] | None, typer.Option(
        "--head", metavar="HEAD", help="Candidate head (repeatable; default: every head).")] = None,
    max_heads: Annotated[int, typer.Option("--max-heads", metavar="K", help="Steer at most K heads.")] = 4,
    together: Annotated[bool, typer.Option(
        "--together", help="Steer all the --head heads at once instead of choosing them on --from.")] = False,
    n: NOpt = 256,
    seed: SeedOpt = 0,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Merullo-style repair: point the heads that attend the wrong answer on the working task at
    the failing task's wrong answers; report the failing task's accuracy before and after."""
    from catalog.analysis.repair import repair as run

    result = run(task, working, model=model, heads=heads or None, max_heads=max_heads, n=n, seed=seed,
                 device=device, together=together)
    if json_:
        print_json(result)
        return
    render_repair(result)


# --- rendering --------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_roles(r: RoleReport) -> None:
    """The roles table: each head's END attention by role, DLA, copy score and label."""
    d = r.dataset
    console.print(f"head roles of circuit {r.circuit_id} ({r.model}), measured on {d.name} "
                  f"({d.n} examples, seed {d.seed}); clean mean metric {fmt_score(r.metric_clean)}")
    out = table("head", *[f"END->{k}" for k in r.roles], "DLA", "copy", "label")
    for h in r.heads:
        end = h.evidence.attention.get("END", {})
        out.add_row(h.node, *[fmt_score(end.get(k), 2) for k in r.roles], fmt_score(h.evidence.dla),
                    fmt_score(h.evidence.copy_score, 2), h.label)
    console.print(out)
    t = r.thresholds
    console.print(f"labels: attention >= {t['attention']:g}, |DLA| >= {t['dla_fraction']:.0%} of the metric, "
                  f"copy score >= {t['copy']:g}, composition >= {t['composition']:g}x random "
                  "(`--json` has every role pair and composition score)")


def render_intervention(r: InterventionResult) -> None:
    d = r.dataset
    edits = [f"ablate {x} ({r.ablation})" for x in r.ablate]
    edits += [f"patch {x} from {r.patch_from or 'the counterfactual prompts'}" for x in r.patch]
    edits += [f"scale {x} x{f:g}" for x, f in r.scale.items()]
    console.print(f"{'; '.join(edits)} on {d.name} ({d.n} examples, seed {d.seed}, {r.model})")
    out = table("", "metric", "accuracy")
    out.add_row("before", fmt_score(r.before.metric), _pct(r.before.accuracy))
    out.add_row("after", fmt_score(r.after.metric), _pct(r.after.accuracy))
    console.print(out)
    console.print(f"metric change {r.metric_change:+.1%}" + (f"; stored as analysis {r.id} of circuit "
                                                             f"{r.circuit_id}" if r.id else ""))


def render_repair(r: RepairResult) -> None:
    console.print(f"repair {r.failing.name} from {r.working.name} on {r.model}")
    console.print(f"steered heads attend uniformly from END to {', '.join(r.steered_to)}")
    out = table("head", f"END->wrong on {r.working.name}", f"END->wrong on {r.failing.name}", "accuracy alone")
    for c in r.candidates:
        out.add_row(c.node, _roles(c.working), _roles(c.failing), _pct(c.accuracy))
    console.print(out)
    console.print(f"steered together: {', '.join(r.chosen) or 'none (no head attends the wrong answer on the working task)'}")
    console.print(f"on {r.failing.n} prompts (seed {r.failing.seed}): accuracy "
                  f"{_pct(r.before.accuracy)} -> {_pct(r.after.accuracy)}, metric {fmt_score(r.before.metric)} -> "
                  f"{fmt_score(r.after.metric)}; the working task: {_pct(r.working_outcome.accuracy)}")


def _roles(masses: dict[str, float]) -> str:
    top = sorted(masses.items(), key=lambda kv: -kv[1])[:3]
    return f"{sum(masses.values()):.2f} (" + " ".join(f"{k} {v:.2f}" for k, v in top) + ")"
