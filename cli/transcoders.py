"""`catalog transcoders train|list|show|evaluate`: the sparse dictionaries feature circuits are read through.

Thin: each command calls one function of `catalog.transcoders` and renders its result. `list`
and `show` read config files only (no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli._common import JsonOpt, console, err_console, print_json, table

app = typer.Typer(help="Transcoders: train, list, show and evaluate the per-layer sparse dictionaries that "
                       "stand in for MLPs in attribution graphs.", no_args_is_help=True)

ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="MODEL", help="catalog-deep, a TransformerLens name or a model folder "
                                           "(default: the embedded catalog-default).")]


def _layers(info: Any) -> None:
    rows = table("layer", "FVU", "dead features", "active per token")
    for f in info.layers:
        rows.add_row(str(f.layer), f"{f.fvu:.2%}", f"{f.dead_features} / {info.n_features}", f"{f.l0:.1f}")
    console.print(rows)


def _describe(info: Any) -> None:
    where = "shipped" if info.shipped else "folder"
    console.print(f"{info.model}: {info.n_layers} layers x {info.n_features} features ({info.activation}, "
                  f"k {info.k}, d_model {info.d_model}), {info.weights_bytes / 1e6:.1f} MB; {where} {info.folder}")
    t, d = info.training, info.data
    if t:
        console.print(f"  trained {t.get('steps')} steps x batch {t.get('batch_size')}, seed {t.get('seed')}, "
                      f"{t.get('seconds')} s ({t.get('seconds_per_1000_steps')} s per 1,000 steps, "
                      f"{t.get('threads')} threads); remake: {t.get('command')}")
    if d:
        mix = ", ".join(f"{k} {v:.0%}" for k, v in (d.get("mix") or {}).items())
        console.print(f"  data: {mix} ({d.get('curriculum')} curriculum), {d.get('tokens')} tokens, "
                      f"sha256 {str(d.get('sha256'))[:16]}")
    console.print(f"  labelled features: {info.labelled_features}; held-out figures:")
    _layers(info)


@app.command("train")
def train(
    model: ModelOpt = None,
    features: Annotated[int, typer.Option("--features", min=1, help="Features per layer.")] = 512,
    k: Annotated[int, typer.Option("--k", min=1, help="Active features per token (TopK; the L0 JumpReLU "
                                                      "aims for).")] = 32,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps (batches of 32 sequences).")] = 1500,
    kind: Annotated[str, typer.Option("--kind", help="topk or jumprelu.")] = "topk",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the initialisation and the data.")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads torch may use.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="New folder for the set (default: "
                                                           "./transcoders-MODEL).")] = None,
    no_labels: Annotated[bool, typer.Option("--no-labels", help="Skip labelling the features.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Train one transcoder per layer (MLP input -> MLP output) on the project's own data and write the set."""
    from catalog.transcoders.train import train_to_folder

    info = train_to_folder(model, out, features=features, k=k, steps=steps, activation=kind,  # type: ignore[arg-type]
                           seed=seed, threads=threads, labels=not no_labels, progress=not json_,
                           report=None if json_ else lambda line: err_console.print(line))
    if json_:
        print_json(info)
        return
    console.print(f"wrote {info.folder}")
    _describe(info)


@app.command("list")
def list_(
    folders: Annotated[list[Path] | None, typer.Argument(help="Set folders to list after the shipped sets.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List the shipped transcoder sets and any set folders given, with their worst-layer FVU."""
    from catalog.transcoders.views import list_sets

    infos = list_sets(folders or [])
    if json_:
        print_json(infos)
        return
    rows = table("model", "features", "activation", "k", "worst FVU", "dead", "labels", "folder")
    for i in infos:
        worst = i.worst_fvu
        rows.add_row(i.model, f"{i.n_layers} x {i.n_features}", i.activation, str(i.k),
                     "-" if worst is None else f"{worst:.2%}", str(sum(f.dead_features for f in i.layers)),
                     str(i.labelled_features), ("shipped " if i.shipped else "") + i.folder)
    console.print(rows)


@app.command("show")
def show(
    ref: Annotated[str | None, typer.Argument(metavar="MODEL|PATH", help="A set folder, or a model whose "
                                                                         "shipped set to show (default: "
                                                                         "catalog-default).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Show one transcoder set: shape, provenance and per-layer held-out figures."""
    from catalog.transcoders.views import TranscoderSetInfo, set_folder

    info = TranscoderSetInfo.read(set_folder(ref))
    if json_:
        print_json(info)
        return
    _describe(info)


@app.command("evaluate")
def evaluate(
    model: ModelOpt = None,
    transcoders: Annotated[Path | None, typer.Option(
        "--transcoders", help="A set folder (default: the set shipped for the model).")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Examples per task suite.")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the task prompts.")] = 1234,
    json_: JsonOpt = False,
) -> None:
    """Held-out FVU per layer and each task's accuracy with every MLP replaced by its transcoder."""
    from catalog.transcoders.evaluate import evaluate_folder

    report = evaluate_folder(model, transcoders, n=n, seed=seed, progress=not json_)
    if json_:
        print_json(report)
        return
    console.print(f"{report.model} with {report.folder} (held-out sequences seed {report.held_out_seed})")
    rows = table("layer", "FVU", "dead features", "active per token")
    for f in report.layers:
        mark = "" if f.fvu <= report.fvu_target else "  above target"
        rows.add_row(str(f.layer), f"{f.fvu:.2%}{mark}", str(f.dead_features), f"{f.l0:.1f}")
    console.print(rows)
    tasks = table("task", "original", "replacement", "ratio", "n")
    for t in report.tasks:
        ratio = "-" if t.ratio is None else f"{t.ratio:.1%}" + ("" if t.ratio >= report.accuracy_ratio_target
                                                                  else "  below target")
        tasks.add_row(t.task, f"{t.original:.1%}", f"{t.replacement:.1%}", ratio, str(t.n))
    console.print(tasks)
    verdict = "meets" if report.meets_targets else "misses"
    console.print(f"{verdict} the targets: FVU <= {report.fvu_target:.0%} per layer, replacement accuracy >= "
                  f"{report.accuracy_ratio_target:.0%} of the original on each task")
