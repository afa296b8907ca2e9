"""How good a transcoder set is: held-out FVU per layer, and the replacement model's accuracy.

The replacement model runs the real model with every layer's MLP output replaced by its
transcoder's prediction from that layer's MLP input (no error terms): attention and everything
else is live, so errors compound through the layers as they would in a model built from the
transcoders alone. Its accuracy on each task suite of `catalog.models.accuracy` stands beside the
original model's, measured on the same prompts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from catalog.errors import InvalidInputError
from catalog.transcoders.model import TranscoderSet, input_hook, output_hook
from catalog.transcoders.views import LayerFigures, TaskComparison, TranscoderEvaluation

#: The targets a set is held to: FVU per layer at most, replacement / original accuracy at least.
FVU_TARGET = 0.10
ACCURACY_RATIO_TARGET = 0.90
#: The seed of fresh held-out sequences for `evaluate` (training measures on its own seed + offset).
EVALUATION_SEED = 777


def check_fits(tset: TranscoderSet, model: Any, folder: Path | str | None = None) -> None:
    """Raise a one-line `InvalidInputError` when `tset` does not fit `model`'s layers and width."""
    n_layers, d_model = int(model.cfg.n_layers), int(model.cfg.d_model)
    if len(tset.layers) != n_layers or tset.layers[0].d_model != d_model:
        where = f" in {folder}" if folder else ""
        raise InvalidInputError(
            f"The transcoders{where} were trained for {tset.model} ({len(tset.layers)} layers, d_model "
            f"{tset.layers[0].d_model}); this model has {n_layers} layers and d_model {d_model}. "
            "Give the set trained for this model with --transcoders PATH.")


@contextmanager
def replaced(model: Any, tset: TranscoderSet) -> Iterator[Any]:
    """`model` with every MLP replaced by its transcoder (no error terms) inside the block."""
    inputs: dict[int, Any] = {}

    def keep(layer: int) -> Any:
        def hook(value: Any, hook: Any) -> None:
            inputs[layer] = value
        return hook

    def replace(layer: int) -> Any:
        def hook(value: Any, hook: Any) -> Any:
            tc = tset.layers[layer]
            return tc(inputs.pop(layer).to(tc.W_enc.dtype)).to(value.dtype)
        return hook

    hooks = []
    for layer in range(len(tset.layers)):
        hooks += [(input_hook(layer), keep(layer)), (output_hook(layer), replace(layer))]
    with model.hooks(fwd_hooks=hooks):
        yield model


def evaluate_set(loaded: Any, tset: TranscoderSet, folder: Path | str = "", n: int = 256, seed: int = 1234,
                 batches: int = 16, progress: Any = None) -> TranscoderEvaluation:
    """Held-out FVU / dead features / L0 per layer on fresh sequences, and accuracy per task of the
    original and the replacement model (`n` examples per suite, prompts from `seed`)."""
    import torch

    from catalog.models.accuracy import accuracy_of
    from catalog.transcoders.data import TokenStream, curriculum_for
    from catalog.transcoders.train import measure

    model = loaded.model
    check_fits(tset, model, folder)
    if loaded.name != tset.model:
        raise InvalidInputError(f"The transcoders in {folder or 'this set'} were trained for {tset.model}, "
                                f"not {loaded.name}: pass --model {tset.model}, or the set for {loaded.name}.")
    tset = TranscoderSet(tset.model, [tc.to(model.cfg.device) for tc in tset.layers], tset.config, tset.labels)
    stream = TokenStream(model.tokenizer, EVALUATION_SEED, curriculum_for(loaded.name))
    with torch.no_grad():
        figures = measure(model, tset, stream, batches=batches, progress=progress)
        original = accuracy_of(model, loaded.tokenizer, n=n, seed=seed)
        if progress:
            progress("task accuracy", 1, 2)
        with replaced(model, tset):
            replacement = accuracy_of(model, loaded.tokenizer, n=n, seed=seed)
        if progress:
            progress("task accuracy", 2, 2)
    tasks = tuple(TaskComparison(task=key, original=round(r["accuracy"], 6),
                                 replacement=round(replacement[key]["accuracy"], 6),
                                 ratio=round(replacement[key]["accuracy"] / r["accuracy"], 6) if r["accuracy"] else None,
                                 n=int(r["n"]), measures=str(r["measures"]))
                  for key, r in original.items())
    return TranscoderEvaluation(model=loaded.name, folder=str(folder),
                                layers=tuple(LayerFigures(**f) for f in figures), tasks=tasks,
                                fvu_target=FVU_TARGET, accuracy_ratio_target=ACCURACY_RATIO_TARGET,
                                held_out_seed=EVALUATION_SEED, accuracy_seed=seed)


def evaluate_folder(model: str | None, transcoders: str | Path | None = None, n: int = 256, seed: int = 1234,
                    device: str | None = "cpu", progress: bool = True) -> TranscoderEvaluation:
    """`evaluate_set` for a model name or folder and a set folder (default: the model's shipped set)."""
    from catalog.jobs import _progress
    from catalog.models import load_model
    from catalog.transcoders.shipped import transcoder_folder

    given = transcoder_folder(transcoders, "") if transcoders is not None else None  # bad paths fail first
    loaded = load_model(model, device=device)
    folder = given or transcoder_folder(None, loaded.name)
    tset = TranscoderSet.load(folder)
    with _progress(progress, f"transcoders for {loaded.name}") as bar:
        return evaluate_set(loaded, tset, folder, n=n, seed=seed, progress=bar)
