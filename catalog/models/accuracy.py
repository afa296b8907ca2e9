"""Top-1 accuracy of a model on the built-in tasks, on the parts held out of training.

Accuracy counts an example correct when the arg-max over the whole vocabulary is the answer
(greater-than: any two-digit year after YY). ``chance`` is the accuracy of guessing uniformly
among the candidates the prompt offers (the two names, or three in the third-name variant; the question's colors; the 100 years;
the ordinary vocabulary for induction), the bar a model must clearly beat.
"""

from __future__ import annotations

from typing import Any

#: (key, task slug, build options, what the key measures)
SUITES: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("ioi", "ioi", {"split": "test", "templates": "train"}, "held-out name pairs, training templates"),
    ("ioi/heldout-templates", "ioi", {"split": "test", "templates": "heldout"},
     "held-out name pairs, held-out templates"),
    *((f"ioi/third-name-{o}", "ioi", {"split": "test", "templates": "train", "variant": "third-name",
                                      "order": o},
       f"held-out name pairs, three names in order {o} (A the answer; B and C give)")
      for o in ("ABC", "BAC", "BCA")),
    ("colored-objects", "colored-objects", {"split": "test", "templates": "train"},
     "held-out object combinations, 3 objects, one-shot (Merullo format)"),
    ("colored-objects/heldout-templates", "colored-objects", {"split": "test", "templates": "heldout"},
     "held-out object combinations, held-out surface/opening frames"),
    ("colored-objects/5-objects", "colored-objects", {"split": "test", "templates": "train", "n_objects": 5},
     "held-out object combinations, 5 objects per question"),
    ("greater-than", "greater-than", {"split": "test"}, "held-out noun-year pairs"),
    ("induction", "induction", {}, "fresh random sequences"),
)


def _chance(key: str, ds: Any, options: dict[str, Any]) -> float:
    if key.startswith("ioi"):
        return 1.0 / 3 if options.get("variant") == "third-name" else 0.5
    if key.startswith("colored-objects"):
        return 1.0 / options.get("n_objects", 3)
    if key == "greater-than":
        return float((99 - ds.extra["yy"]).float().mean()) / 100.0
    import torch

    return 1.0 / max(1, int(torch.unique(ds.clean).numel()))


def accuracy_of(model: Any, tokenizer: Any, n: int = 256, seed: int = 1234,
                batch_size: int = 64) -> dict[str, dict[str, Any]]:
    """Per suite: accuracy, mean metric, chance, n and what it measures, for a bare model."""
    import torch

    from catalog.tasks import get_task

    device = next(model.parameters()).device
    results: dict[str, dict[str, Any]] = {}
    for key, slug, options, what in SUITES:
        ds = get_task(slug).build(tokenizer, n=n, seed=seed, **options).to(device)
        correct, metric = [], []
        with torch.no_grad():
            for batch in ds.batches(batch_size):
                logits = model(batch.clean, return_type="logits")
                correct.append(batch.correct(logits).float().cpu())
                metric.append(batch.metric(logits).float().cpu())
        results[key] = {
            "accuracy": float(torch.cat(correct).mean()),
            "mean_metric": float(torch.cat(metric).mean()),
            "metric": ds.metric_name,
            "chance": round(_chance(key, ds, options), 4),
            "n": len(ds),
            "seed": seed,
            "measures": what,
        }
    return results


def evaluate_accuracy(loaded_model: Any, n: int = 256, seed: int = 1234,
                      batch_size: int = 64) -> dict[str, dict[str, Any]]:
    """Accuracy of a `LoadedModel` on each built-in task's held-out part (see `SUITES`)."""
    return accuracy_of(loaded_model.model, loaded_model.tokenizer, n=n, seed=seed, batch_size=batch_size)
