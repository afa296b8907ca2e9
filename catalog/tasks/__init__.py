"""Task datasets for circuit discovery, keyed by slug in `TASKS`.

Each `TaskSpec` builds a `TaskDataset` (clean and counterfactual prompts, answer tokens, metric)
for one model's tokenizer. `task_from_file` reads a user's JSONL task. Importing this package
does not import torch.
"""

from __future__ import annotations

from catalog.tasks import colored_objects, greater_than, induction, ioi
from catalog.tasks.base import MetricFn, TaskDataset, TaskSpec, get_task
from catalog.tasks.custom import task_from_file

TASKS: dict[str, TaskSpec] = {
    spec.slug: spec for spec in (ioi.SPEC, colored_objects.SPEC, greater_than.SPEC, induction.SPEC)
}

__all__ = ["TASKS", "MetricFn", "TaskDataset", "TaskSpec", "get_task", "task_from_file"]
