"""Task datasets: clean and counterfactual prompts, answer tokens and a per-example metric.

A `TaskDataset` is what every discovery method consumes. Its tensors are already tokenized for
one model's tokenizer (BOS first, right-padded), so methods never see text. Per-example fields
slice along the first dimension; `ds[i:j]` returns a smaller dataset whose `metric` still works.
torch is imported lazily: this module is safe to import from the CLI.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from catalog.errors import TaskError, suggest

if TYPE_CHECKING:
    import torch

#: (next-token logits at the read positions [B, V], the dataset) -> per-example value [B].
MetricFn = Callable[["torch.Tensor", "TaskDataset"], "torch.Tensor"]


@dataclass(eq=False)
class TaskDataset:
    """Tokenized clean/corrupt prompt pairs with the metric that scores task behaviour.

    ``clean`` and ``corrupt`` are LongTensors [N, T] of the same shape (BOS first, right-padded
    with ``pad_id``); ``positions`` [N] is where the next-token logits are read; ``answers`` and
    ``wrong_answers`` [N] are the token ids the metric contrasts. ``extra`` holds further
    per-example tensors (sliced with the rest), ``shared`` tensors common to all examples.
    ``role_ids`` [N, T] names every position by an index into ``role_names`` (-1 on padding; see
    `catalog.tasks.roles`); without it the read position is ``END`` and the rest ``OTHER``.
    """

    task: str
    clean: torch.Tensor
    corrupt: torch.Tensor
    positions: torch.Tensor
    answers: torch.Tensor
    wrong_answers: torch.Tensor
    prompts: list[str]
    corrupt_prompts: list[str]
    metric_name: str
    metric_fn: MetricFn
    correct_fn: MetricFn
    pad_id: int
    spec: Mapping[str, Any] = field(default_factory=dict)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    shared: dict[str, torch.Tensor] = field(default_factory=dict)
    role_names: tuple[str, ...] = ()
    role_ids: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.clean.shape[0]
        if self.clean.ndim != 2 or self.clean.shape != self.corrupt.shape:
            raise TaskError(
                f"Task {self.task}: clean {tuple(self.clean.shape)} and corrupt "
                f"{tuple(self.corrupt.shape)} must be [N, T] tensors of the same shape."
            )
        per_example = {"positions": self.positions, "answers": self.answers,
                       "wrong_answers": self.wrong_answers, **self.extra}
        for key, t in per_example.items():
            if t.shape[0] != n:
                raise TaskError(f"Task {self.task}: {key} has {t.shape[0]} rows, expected {n}.")
        if len(self.prompts) != n or len(self.corrupt_prompts) != n:
            raise TaskError(f"Task {self.task}: expected {n} prompts and corrupt prompts.")
        if n and (int(self.positions.min()) < 0 or int(self.positions.max()) >= self.clean.shape[1]):
            raise TaskError(f"Task {self.task}: a read position lies outside the prompt.")
        if self.role_ids is None:
            self.role_names, self.role_ids = _plain_role_ids(self.positions, self.clean.shape[1])
        elif self.role_ids.shape != self.clean.shape or (self.role_ids.numel() and int(self.role_ids.max()) >= len(self.role_names)):
            raise TaskError(f"Task {self.task}: role_ids must be [N, T] like the prompts, indexing role_names.")
        self._hash: str | None = None

    # -- size and slicing -------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def __getitem__(self, index: slice | int) -> TaskDataset:
        """``ds[i:j]`` (or ``ds[i]``, kept two-dimensional): a dataset over those examples."""
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} examples")
            index = slice(index, index + 1 if index != -1 else None)
        if not isinstance(index, slice):
            raise TypeError("TaskDataset supports integer and slice indexing only")
        return TaskDataset(
            task=self.task, clean=self.clean[index], corrupt=self.corrupt[index],
            positions=self.positions[index], answers=self.answers[index],
            wrong_answers=self.wrong_answers[index], prompts=self.prompts[index],
            corrupt_prompts=self.corrupt_prompts[index], metric_name=self.metric_name,
            metric_fn=self.metric_fn, correct_fn=self.correct_fn, pad_id=self.pad_id,
            spec=self.spec, extra={k: v[index] for k, v in self.extra.items()},
            shared=dict(self.shared), role_names=self.role_names,
            role_ids=None if self.role_ids is None else self.role_ids[index],
        )

    def batches(self, batch_size: int) -> list[TaskDataset]:
        """Consecutive slices of at most ``batch_size`` examples."""
        if batch_size < 1:
            raise TaskError(f"batch_size must be at least 1, got {batch_size}.")
        return [self[i:i + batch_size] for i in range(0, len(self), batch_size)]

    def to(self, device: Any) -> TaskDataset:
        """The same dataset with every tensor on ``device``."""
        out = self[0:len(self)]
        for name in ("clean", "corrupt", "positions", "answers", "wrong_answers"):
            setattr(out, name, getattr(out, name).to(device))
        out.extra = {k: v.to(device) for k, v in out.extra.items()}
        out.shared = {k: v.to(device) for k, v in out.shared.items()}
        out.role_ids = None if out.role_ids is None else out.role_ids.to(device)
        out._hash = self._hash
        return out

    @property
    def device(self) -> Any:
        return self.clean.device

    # -- roles ------------------------------------------------------------------------------

    def role_index(self, role: str) -> int:
        """The index of `role` in ``role_names``; a role the task does not have is a one-line error."""
        from catalog.tasks.roles import check_known

        check_known([role], self.role_names, self.task)
        return self.role_names.index(role)

    def role_positions(self, role: str) -> torch.Tensor:
        """[N]: the token index of `role` in each example. A role the task does not have, or one
        that only some prompts have (a slot of some templates), is a one-line error."""
        import torch

        index = self.role_index(role)
        hits = self.role_ids == index
        missing = int((~hits.any(dim=1)).sum())
        if missing:
            raise TaskError(f"Role {role} is missing from {missing} of {len(self)} {self.task} prompts (a slot "
                            "some templates lack); use a role every prompt has, such as END.")
        return hits.to(torch.long).argmax(dim=1)

    def first_difference(self) -> torch.Tensor:
        """[N]: the first position where clean and corrupt prompts differ (T where they never do).

        Under counterfactual ablation nothing before it can be patched: both runs are identical
        there, because attention only looks back.
        """
        import torch

        differs = self.clean != self.corrupt
        t = self.clean.shape[1]
        idx = torch.arange(t, device=self.clean.device).expand_as(differs)
        return torch.where(differs, idx, torch.full_like(idx, t)).min(dim=1).values

    # -- metric -----------------------------------------------------------------------------

    def final_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Next-token logits at each example's read position: [B, T, V] -> [B, V].

        A [B, V] tensor is taken to be already gathered and returned unchanged.
        """
        import torch

        if logits.ndim == 2:
            if logits.shape[0] != len(self):
                raise TaskError(f"Got logits for {logits.shape[0]} examples, dataset has {len(self)}.")
            return logits
        if logits.ndim != 3 or logits.shape[0] != len(self):
            raise TaskError(
                f"Expected logits [B={len(self)}, T, V], got {tuple(logits.shape)}; slice the "
                "dataset (ds[i:j]) to match the batch you ran."
            )
        rows = torch.arange(len(self), device=logits.device)
        return logits[rows, self.positions.to(logits.device)]

    def metric(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-example task metric [B] (higher = more task behaviour); differentiable."""
        return self.metric_fn(self.final_logits(logits), self)

    def correct(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-example bool [B]: the model's top-1 token over the whole vocabulary is right."""
        return self.correct_fn(self.final_logits(logits), self)

    # -- identity ---------------------------------------------------------------------------

    @property
    def dataset_hash(self) -> str:
        """sha256 over the tokens, read positions, answers and the task spec (hex)."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update(json.dumps({"task": self.task, "metric": self.metric_name,
                                 "spec": dict(self.spec)}, sort_keys=True, default=str).encode())
            tensors = [self.clean, self.corrupt, self.positions, self.answers, self.wrong_answers]
            tensors += [self.extra[k] for k in sorted(self.extra)]
            tensors += [self.shared[k] for k in sorted(self.shared)]
            for t in tensors:
                h.update(str(tuple(t.shape)).encode())
                h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
            self._hash = h.hexdigest()
        return self._hash

    def __repr__(self) -> str:
        return (f"TaskDataset(task={self.task!r}, n={len(self)}, seq_len={self.clean.shape[1]}, "
                f"metric={self.metric_name!r})")


def _plain_role_ids(positions: torch.Tensor, width: int) -> tuple[tuple[str, ...], torch.Tensor]:
    """``END`` at each read position, ``OTHER`` before it, -1 after (padding)."""
    import torch

    from catalog.tasks.roles import END, OTHER

    t = torch.arange(width, device=positions.device)[None, :]
    p = positions[:, None]
    ids = torch.where(t < p, 0, torch.where(t == p, 1, -1)).to(torch.long)
    return (OTHER, END), ids


# -- metrics shared by several tasks --------------------------------------------------------

def logit_diff(final: torch.Tensor, ds: TaskDataset) -> torch.Tensor:
    """logit(answer) - logit(wrong answer), per example."""
    import torch

    rows = torch.arange(final.shape[0], device=final.device)
    return final[rows, ds.answers.to(final.device)] - final[rows, ds.wrong_answers.to(final.device)]


def top1_is_answer(final: torch.Tensor, ds: TaskDataset) -> torch.Tensor:
    """The arg-max over the whole vocabulary is the answer token."""
    return final.argmax(dim=-1) == ds.answers.to(final.device)


# -- the registry entry ---------------------------------------------------------------------

Builder = Callable[..., TaskDataset]


@dataclass(frozen=True)
class TaskSpec:
    """A task in the registry: what it is, how it is scored, and how to build its dataset."""

    slug: str
    description: str
    metric_name: str
    metric_description: str
    counterfactual: str
    builder: Builder = field(repr=False)
    options: Mapping[str, str] = field(default_factory=dict)

    def build(self, model: Any, n: int = 256, seed: int = 0, **options: Any) -> TaskDataset:
        """Build ``n`` examples for ``model`` (a `LoadedModel` or a Hugging Face tokenizer).

        Deterministic: the same model tokenizer, ``n``, ``seed`` and options give the same
        tensors and the same `TaskDataset.dataset_hash`.
        """
        if not isinstance(n, int) or n < 1:
            raise TaskError(f"Task {self.slug}: n must be a positive integer, got {n!r}.")
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise TaskError(f"Task {self.slug}: unknown option(s) {', '.join(unknown)}. Known: {known}.")
        return self.builder(model, n=n, seed=seed, **options)


def parse_task_ref(ref: str) -> tuple[str, dict[str, Any]]:
    """Split ``slug:key=value,key=value`` into the slug and its build options (whole numbers as ints).

    >>> parse_task_ref("ioi:counterfactual=s2-swap")
    ('ioi', {'counterfactual': 's2-swap'})
    >>> parse_task_ref("colored-objects:n_objects=5,shots=0")
    ('colored-objects', {'n_objects': 5, 'shots': 0})
    """
    slug, _, rest = ref.strip().partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise TaskError(f"Task parameter '{part}' in '{ref}' is not key=value; write e.g. "
                            "ioi:counterfactual=s2-swap.")
        value = value.strip()
        options[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    if not slug.strip():
        raise TaskError(f"'{ref}' names no task; write e.g. ioi or colored-objects:n_objects=5.")
    return slug.strip(), options


def format_task_ref(slug: str, options: Mapping[str, Any]) -> str:
    """The inverse of `parse_task_ref`.

    >>> format_task_ref("colored-objects", {"n_objects": 5, "shots": 0})
    'colored-objects:n_objects=5,shots=0'
    >>> format_task_ref("ioi", {})
    'ioi'
    """
    return slug + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")


def task_name(slug: str, spec: TaskSpec, options: Mapping[str, Any]) -> str:
    """The name a task with these build options is stored under: the slug, then the options that
    differ from the builder's defaults (``ioi:counterfactual=s2-swap``; plain ``ioi`` for ABC)."""
    import inspect

    params = inspect.signature(spec.builder).parameters
    given = {k: v for k, v in sorted(options.items())
             if k not in params or params[k].default is inspect.Parameter.empty or params[k].default != v}
    return format_task_ref(slug, given)


def get_task(slug: str, registry: Mapping[str, TaskSpec] | None = None) -> TaskSpec:
    """The registered task with this slug, whatever its case (``IOI``, ``Colored_Objects``); an
    unknown slug names the nearest known one."""
    if registry is None:
        from catalog.tasks import TASKS

        registry = TASKS
    spec = registry.get(slug) or registry.get(slug.strip().lower().replace("_", "-"))
    if spec is None:
        raise suggest(slug, list(registry), "task")
    return spec
