"""Task datasets for circuit discovery, keyed by slug in `TASKS`.

Each `TaskSpec` builds a `TaskDataset` (clean and counterfactual prompts, answer tokens, metric)
for one model's tokenizer. `task_from_file` reads a user's JSONL task. Importing this package
does not import torch.
"""

from __future__ import annotations

from catalog.tasks.base import MetricFn, TaskDataset, TaskSpec, get_task

TASKS: dict[str, TaskSpec] = {}

__all__ = ["TASKS", "MetricFn", "TaskDataset", "TaskSpec", "get_task"]
