"""`catalog model info|accuracy`: the embedded models and how well models do the tasks."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._common import JsonOpt, console, print_json, table

app = typer.Typer(help="The embedded models (catalog-default, catalog-deep), and task accuracy of any model.",
                  no_args_is_help=True)


@app.command("info")
def info(
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="An embedded model: catalog-default (the default) or catalog-deep.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Show an embedded model: shape, parameter count and training recipe."""
    from catalog.errors import ModelLoadError
    from catalog.models import DEFAULT_MODEL_NAME, EMBEDDED_MODELS, embedded_model_dir
    from catalog.views import ModelInfo

    folder = embedded_model_dir(model)
    if folder is None:
        raise ModelLoadError(f"{model!r} is not an embedded model; use one of {', '.join(EMBEDDED_MODELS)}.")
    data = ModelInfo.of_checkpoint(folder)
    if json_:
        print_json(data)
        return
    c, t = data.architecture, data.training
    recipe = t.get("recipe") or {}
    what = "embedded default model" if data.name == DEFAULT_MODEL_NAME else "embedded model"
    console.print(f"{data.name} ({what}, revision {data.revision})")
    console.print(f"  {c['n_layers']} layers x {c['n_heads']} heads, d_model {c['d_model']}, "
                  f"d_mlp {c['d_mlp']}, vocabulary {c['d_vocab']}, context {c['n_ctx']}")
    console.print(f"  {data.parameters:,} parameters, {data.weights_bytes / 1e6:.1f} MB safetensors")
    console.print(f"  trained: {recipe.get('steps')} steps x batch {recipe.get('batch_size')}, AdamW lr "
                  f"{recipe.get('lr')}, {t.get('seconds')} s on CPU; rebuild: {t.get('command')}")
    if recipe.get("grow_from"):
        console.print(f"  grown from {recipe['grow_from']} (its layers copied in, the added parts starting silent)")
    for phase in t.get("curriculum") or []:
        mix = ", ".join(f"{k} {v:.2f}" for k, v in phase["mix"].items())
        console.print(f"  from step {phase['from_step']}: {mix}")


@app.command("accuracy")
def accuracy(
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="catalog-deep, a TransformerLens name or a model folder "
                              "(default: the embedded catalog-default).")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Examples per task.")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the evaluation prompts.")] = 1234,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, ... (default: CUDA if available).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Top-1 accuracy (whole vocabulary) on each task's held-out names, objects and templates."""
    from catalog.models import load_model
    from catalog.models.accuracy import evaluate_accuracy
    from catalog.views import AccuracyReport

    loaded = load_model(model, device=device)
    report = AccuracyReport(model=loaded.name, is_default=loaded.is_default,
                            results=evaluate_accuracy(loaded, n=n, seed=seed))
    if json_:
        print_json(report)
        return
    console.print(f"model: {loaded.describe()}")
    out = table("task", "accuracy", "chance", "mean metric", "n", "measured on")
    for key, r in report.results.items():
        out.add_row(key, f"{r.accuracy:.1%}", f"{r.chance:.1%}",
                    f"{r.mean_metric:.3f} ({r.metric})", str(r.n), r.measures)
    console.print(out)
