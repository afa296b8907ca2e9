"""Named positions (roles) of each example of a task dataset, read from its tokens.

Head roles and interventions speak of positions by role (``END``, ``S2``, ``QOBJ``): this module
finds, for every example, the token index of each role. A dataset that carries its own roles
(a ``roles`` mapping of name -> LongTensor [N]) is used as it is; otherwise the roles are located
from what every dataset already holds: the read position, the answer and wrong-answer token ids,
and where the clean and counterfactual prompts differ. An index of -1 means "absent in this
example". torch is imported by the functions, not at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from catalog.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

Roles = dict[str, "torch.Tensor"]

#: The role every task has: the position whose next-token logits the metric reads.
END = "END"

#: What each built-in task's located roles are, in prompt order (``END`` last).
TASK_ROLES: dict[str, tuple[str, ...]] = {
    "ioi": ("IO", "S1", "S1+1", "S2", END),
    "colored-objects": ("ALT_COLOR", "ALT_OBJ", "COLOR", "OBJ", "QOBJ", END),
    "greater-than": ("YY", END),
}
#: Roles of any other task: the first token where clean and counterfactual differ, and END.
GENERIC_ROLES: tuple[str, ...] = ("DIFF", END)

#: Which role's token the answer (and the wrong answer) copies, for the OV copying score.
#: IOI: the IO and S names are copied from their first mentions. Colored Objects: the answer
#: color is read from the queried object's color in the list (a lowercase word there; the
#: answer is its capitalised form), the wrong answer from the other object's.
COPY_SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "ioi": (("IO", "answer"), ("S1", "wrong")),
    "colored-objects": (("COLOR", "answer"), ("ALT_COLOR", "wrong")),
}

#: How a label names the answer and the wrong answer of a task.
ANSWER_NAMES: dict[str, tuple[str, str]] = {
    "ioi": ("IO", "S"),
    "colored-objects": ("the answer color", "the other color"),
    "greater-than": ("later years", "YY"),
}


def role_names(task: str, dataset: Any = None) -> tuple[str, ...]:
    """The roles a task's examples have (the dataset's own, when it carries them)."""
    own = getattr(dataset, "roles", None)
    if isinstance(own, Mapping) and own:
        return tuple(own)
    return TASK_ROLES.get(task, GENERIC_ROLES)


def locate(dataset: Any) -> Roles:
    """``{role: LongTensor [N]}``: each example's token index of each role (-1: absent)."""
    own = getattr(dataset, "roles", None)
    if isinstance(own, Mapping) and own:
        return {k: v.long() for k, v in own.items()}
    finder = _FINDERS.get(dataset.task, _generic)
    return finder(dataset)


def check_role(task: str, role: str, dataset: Any = None) -> str:
    """`role` if the task has it, else an error naming the task's roles."""
    known = role_names(task, dataset)
    if role.isdigit():
        return role  # a plain token index is always allowed
    if role not in known:
        raise InvalidInputError(
            f"Role '{role}' is not a position of task {task}; its roles are {', '.join(known)} "
            "(or give a token index, e.g. @5)."
        )
    return role


def role_positions(roles: Roles, role: str, n: int) -> torch.Tensor:
    """Per-example token index of `role` (a role name or a plain index)."""
    import torch

    if role.isdigit():
        return torch.full((n,), int(role), dtype=torch.long)
    return roles[role]


# --- locating roles from tokens -----------------------------------------------------------


def _first_diff(ds: Any) -> torch.Tensor:
    """Index of the first token where clean and counterfactual differ (-1: none)."""
    import torch

    diff = ds.clean != ds.corrupt
    idx = diff.float().argmax(dim=1)
    return torch.where(diff.any(dim=1), idx, torch.full_like(idx, -1))


def _occurrences(row: list[int], token: int, end: int) -> list[int]:
    return [i for i in range(1, end + 1) if row[i] == token]


def _per_example(ds: Any, names: tuple[str, ...],
                 find: Callable[[list[int], list[int], int, int, int], dict[str, int]]) -> Roles:
    """Run ``find(clean_row, corrupt_row, end, answer, wrong) -> {role: index}`` per example."""
    import torch

    out = {name: [-1] * len(ds) for name in names}
    clean, corrupt = ds.clean.tolist(), ds.corrupt.tolist()
    ends, answers, wrongs = ds.positions.tolist(), ds.answers.tolist(), ds.wrong_answers.tolist()
    for i in range(len(ds)):
        found = find(clean[i], corrupt[i], ends[i], answers[i], wrongs[i])
        for name, pos in found.items():
            out[name][i] = pos
        out[END][i] = ends[i]
    return {name: torch.tensor(v, dtype=torch.long) for name, v in out.items()}


def _ioi(ds: Any) -> Roles:
    def find(row: list[int], _c: list[int], end: int, io: int, s: int) -> dict[str, int]:
        ios, ss = _occurrences(row, io, end), _occurrences(row, s, end)
        found: dict[str, int] = {}
        if ios:
            found["IO"] = ios[0]
        if ss:
            found["S1"], found["S1+1"] = ss[0], ss[0] + 1
        if len(ss) > 1:
            found["S2"] = ss[1]
        return found

    return _per_example(ds, TASK_ROLES["ioi"], find)


def _colored_objects(ds: Any) -> Roles:
    qobj = iter(_first_diff(ds).tolist())

    def find(row: list[int], corrupt: list[int], end: int, _a: int, _w: int) -> dict[str, int]:
        q = next(qobj)
        if q < 0:
            return {}
        found = {"QOBJ": q}
        # The list item is the queried object's last mention before the question (a solved
        # example earlier in the prompt may mention it too); its color is the word before it.
        for role, color, token in (("OBJ", "COLOR", row[q]), ("ALT_OBJ", "ALT_COLOR", corrupt[q])):
            mentions = _occurrences(row, token, q - 1)
            if mentions:
                found[role], found[color] = mentions[-1], mentions[-1] - 1
        return found

    return _per_example(ds, TASK_ROLES["colored-objects"], find)


def _at_first_diff(ds: Any, names: tuple[str, ...], role: str) -> Roles:
    """Roles `role` (the first differing token) and END, for tasks whose counterfactual changes
    exactly the token that matters (greater-than's YY; any user task)."""
    first = iter(_first_diff(ds).tolist())

    def find(*_: Any) -> dict[str, int]:
        p = next(first)
        return {role: p} if p >= 0 else {}

    return _per_example(ds, names, find)


def _greater_than(ds: Any) -> Roles:
    return _at_first_diff(ds, TASK_ROLES["greater-than"], "YY")


def _generic(ds: Any) -> Roles:
    return _at_first_diff(ds, GENERIC_ROLES, "DIFF")


_FINDERS: dict[str, Callable[[Any], Roles]] = {
    "ioi": _ioi,
    "colored-objects": _colored_objects,
    "greater-than": _greater_than,
}
