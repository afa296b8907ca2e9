"""What every analysis starts from: a model, a task dataset built for it, and plain forward runs.

Task references may carry build options, ``colored-objects:n_objects=5`` or
``ioi:counterfactual=s2,order=ABBA``, so that a task's variant (e.g. the 5-object Colored Objects
questions the embedded model gets at chance) can be named on the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from catalog.analysis.records import DatasetRef, Outcome
from catalog.errors import InvalidInputError
from catalog.tasks.base import parse_task_ref

if TYPE_CHECKING:
    import torch

#: Examples per analysis when the caller does not say.
DEFAULT_N = 128
DEFAULT_BATCH_SIZE = 64

Hook = tuple[str, Callable[..., Any]]


def load(model: Any = None, device: str | None = None) -> Any:
    """A `LoadedModel`: given, named (a catalog model name or path), or the embedded default."""
    if model is not None and not isinstance(model, str):
        return model
    from catalog.models import load_model

    return load_model(model, device=device)


def model_for(circuit: Any, model: Any = None, device: str | None = None) -> Any:
    """The model a stored circuit was found in (or `model`), checked to have the circuit's shape."""
    loaded = load(model if model is not None else circuit.model, device)
    shape, want = loaded.shape, circuit.graph.shape
    if (shape.n_layers, shape.n_heads) != (want.n_layers, want.n_heads):
        raise InvalidInputError(
            f"Circuit #{circuit.id} is over {want.name} ({want.n_layers} layers x {want.n_heads} heads) "
            f"but the model loaded is {shape.name} ({shape.n_layers} x {shape.n_heads}); pass --model "
            "naming the circuit's model."
        )
    return loaded


def build(loaded: Any, task_ref: str, n: int = DEFAULT_N, seed: int = 0) -> tuple[Any, DatasetRef]:
    """The task's dataset for this model (on the model's device) and its reference."""
    from catalog.tasks import get_task

    slug, options = parse_task_ref(task_ref)
    ds = get_task(slug).build(loaded, n=n, seed=seed, **options)
    ref = DatasetRef(task=slug, options=options, n=n, seed=seed, dataset_hash=ds.dataset_hash)
    return ds.to(next(loaded.model.parameters()).device), ref


def capture(model: Any, tokens: torch.Tensor, names: Iterable[str],
            batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, torch.Tensor]:
    """The activations at hooks `names` over all rows of `tokens` (batched, no gradients)."""
    import torch

    wanted = sorted(set(names))
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in wanted}
    with torch.no_grad():
        for i in range(0, tokens.shape[0], batch_size):
            hooks = [(k, lambda act, hook, k=k: parts[k].append(act.detach().clone())) for k in wanted]
            with model.hooks(fwd_hooks=hooks):
                model(tokens[i:i + batch_size], return_type=None)
    return {k: torch.cat(v) for k, v in parts.items()}


def outcome(model: Any, ds: Any, hooks: Callable[[int, int], list[Hook]] | None = None,
            batch_size: int = DEFAULT_BATCH_SIZE) -> Outcome:
    """Mean metric and top-1 accuracy on the clean prompts, with ``hooks(start, stop)`` applied
    to each batch of rows [start, stop) (None: the unedited model)."""
    import torch

    total, correct = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(ds), batch_size):
            part = ds[i:i + batch_size]
            with model.hooks(fwd_hooks=hooks(i, i + len(part)) if hooks else []):
                logits = model(part.clean)
            total += float(part.metric(logits).double().sum())
            correct += float(part.correct(logits).double().sum())
    return Outcome(metric=total / len(ds), accuracy=correct / len(ds))
