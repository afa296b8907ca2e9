"""Text-level examples and their tokenization into a `TaskDataset`.

Task generators produce `Example`s (clean text, counterfactual text, answer words); `assemble`
tokenizes them for one model and checks what the tensors promise: answers are single tokens,
clean and corrupt have the same length. The training script reuses the same generators.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.errors import TaskError
from catalog.tasks.base import MetricFn, TaskDataset, logit_diff, top1_is_answer
from catalog.tasks.roles import named_positions, plain_roles, slot_roles
from catalog.tasks.tokens import Tokens

#: Values a ``split`` option takes: every combination, the training part, or the held-out part.
SPLITS = ("all", "train", "test")
#: Values a ``templates`` option takes.
TEMPLATE_SETS = ("all", "train", "heldout")


@dataclass(frozen=True)
class Example:
    """One clean/corrupt prompt pair; answers are words read right after the prompt.

    ``space`` says whether the answer follows a space (" Mary") or is glued on ("32").
    ``marks`` names key tokens: ``(role, character index in the clean text)``; the token that
    covers that character takes the role (see `catalog.tasks.roles`).
    """

    clean: str
    corrupt: str
    answer: str
    wrong: str
    space: bool = True
    meta: Mapping[str, Any] = field(default_factory=dict)
    marks: tuple[tuple[str, int], ...] = ()


def held_out(*key: object, fraction: int = 5) -> bool:
    """Whether a combination is in the held-out part (about 1 in ``fraction``), stably.

    >>> held_out("Mary", "John") == held_out("Mary", "John")
    True
    """
    digest = hashlib.sha256("|".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:4], "big") % fraction == 0


def check_choice(task: str, option: str, value: str, allowed: Sequence[str]) -> None:
    """Raise a TaskError when an option's value is not one of ``allowed``."""
    if value not in allowed:
        raise TaskError(f"Task {task}: {option} must be one of {', '.join(allowed)}; got {value!r}.")


def pick_templates(task: str, templates: Sequence[str], heldout: Sequence[str], which: str) -> list[str]:
    """The templates a ``templates=`` option selects (all, the training ones, the held-out ones)."""
    check_choice(task, "templates", which, TEMPLATE_SETS)
    if which == "heldout":
        return list(heldout)
    if which == "train":
        return [t for t in templates if t not in heldout]
    return list(templates)


def assemble(task: str, model: Any, examples: Sequence[Example], spec: Mapping[str, Any],
             metric_name: str, metric_fn: MetricFn = logit_diff, correct_fn: MetricFn = top1_is_answer,
             extra: Mapping[str, Sequence[int]] | None = None,
             shared: Mapping[str, Sequence[int]] | None = None) -> TaskDataset:
    """Tokenize ``examples`` for ``model`` into a `TaskDataset`, or say which one cannot be."""
    import torch

    tokens = Tokens(model)
    clean_rows: list[list[int]] = []
    corrupt_rows: list[list[int]] = []
    role_rows: list[list[str]] = []
    answers: list[int] = []
    wrongs: list[int] = []
    for i, ex in enumerate(examples):
        clean = tokens.prompt(ex.clean)
        corrupt = tokens.prompt(ex.corrupt)
        if len(clean) != len(corrupt):
            raise TaskError(
                f"Task {task}, example {i}: the clean prompt is {len(clean)} tokens and the corrupt "
                f"prompt {len(corrupt)} for tokenizer {tokens.name}; they must be the same length "
                f"(clean {ex.clean!r}, corrupt {ex.corrupt!r})."
            )
        clean_rows.append(clean)
        corrupt_rows.append(corrupt)
        role_rows.append(example_roles(tokens, ex, len(clean)))
        answers.append(tokens.word(ex.answer, space=ex.space, what="answer"))
        wrongs.append(tokens.word(ex.wrong, space=ex.space, what="wrong answer"))
    if not clean_rows:
        raise TaskError(f"Task {task}: no examples to build.")
    width = max(len(r) for r in clean_rows)
    role_names, role_ids = role_tensor(role_rows, width)
    return TaskDataset(
        task=task,
        clean=tokens.pad(clean_rows, width),
        corrupt=tokens.pad(corrupt_rows, width),
        positions=torch.tensor([len(r) - 1 for r in clean_rows], dtype=torch.long),
        answers=torch.tensor(answers, dtype=torch.long),
        wrong_answers=torch.tensor(wrongs, dtype=torch.long),
        prompts=[ex.clean for ex in examples],
        corrupt_prompts=[ex.corrupt for ex in examples],
        metric_name=metric_name,
        metric_fn=metric_fn,
        correct_fn=correct_fn,
        pad_id=tokens.pad_id,
        spec=dict(spec),
        extra={k: torch.tensor(list(v), dtype=torch.long) for k, v in (extra or {}).items()},
        shared={k: torch.tensor(list(v), dtype=torch.long) for k, v in (shared or {}).items()},
        role_names=role_names,
        role_ids=role_ids,
    )


def example_roles(tokens: Tokens, ex: Example, length: int) -> list[str]:
    """The role of each of the `length` positions of an example's clean prompt."""
    if not ex.marks:
        return plain_roles(length)
    return slot_roles(length, named_positions(tokens.tok, ex.clean, ex.marks))


def role_tensor(rows: Sequence[Sequence[str]], width: int) -> tuple[tuple[str, ...], Any]:
    """(role names ordered by mean position, LongTensor [N, width] of indices, -1 on padding)."""
    import torch

    where: dict[str, list[int]] = {}
    for row in rows:
        for t, r in enumerate(row):
            where.setdefault(r, []).append(t)
    names = tuple(sorted(where, key=lambda r: (sum(where[r]) / len(where[r]), r)))
    index = {r: i for i, r in enumerate(names)}
    ids = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor([index[r] for r in row], dtype=torch.long)
    return names, ids
