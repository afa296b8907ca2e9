"""Named positions (roles) of each example, as the task dataset names them.

Every task dataset names each position of each prompt by a role (`catalog.tasks.roles`: key
tokens such as ``IO``, ``S2``, ``QOBJ``, the read position ``END``, and slots such as ``S1+2``),
and discovery scores ``a1.h0@END`` from the same names. Head roles and interventions read their
positions from there, so an analysis and a position-resolved circuit always mean the same token.
An index of -1 means "absent in this example". torch is imported by the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from catalog.errors import InvalidInputError
from catalog.tasks.roles import BOS, END, OTHER

if TYPE_CHECKING:
    import torch

Roles = dict[str, "torch.Tensor"]

__all__ = ["ANSWER_NAMES", "COPY_SOURCES", "END", "check_role", "key_roles", "locate", "role_names",
           "role_positions"]

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


def role_names(dataset: Any) -> tuple[str, ...]:
    """Every role the dataset's prompts have (key tokens, ``END`` and slots)."""
    from catalog.discovery.positions import role_ids_of

    return role_ids_of(dataset)[0]


def key_roles(names: Sequence[str]) -> tuple[str, ...]:
    """Of a dataset's role `names`, those an analysis summarises: the task's named tokens and
    the token after each (``S1+1``, ``QOBJ+1``), ``END`` last; not ``BOS``, ``OTHER`` or the
    farther slots.

    >>> key_roles(("BOS", "IO", "IO+1", "IO+2", "S1", "S1+1", "END"))
    ('IO', 'IO+1', 'S1', 'S1+1', 'END')
    """
    named = {r for r in names if "+" not in r and r not in (BOS, OTHER)}
    keep = [r for r in names if r in named or (r.endswith("+1") and r[:-2] in named)]
    return tuple(r for r in keep if r != END) + ((END,) if END in names else ())


def locate(dataset: Any) -> Roles:
    """``{role: LongTensor [N]}``: each example's token index of each role (-1: absent); a role
    that spans several positions of a prompt (``OTHER``) is located at its first."""
    import torch

    from catalog.discovery.positions import role_ids_of

    names, ids = role_ids_of(dataset)
    out: Roles = {}
    for i, name in enumerate(names):
        hits = ids == i
        out[name] = torch.where(hits.any(dim=1), hits.to(torch.long).argmax(dim=1), -1)
    return out


def check_role(task: str, role: str, dataset: Any) -> str:
    """`role` if the dataset's prompts have it (or it is a token index), else a one-line error."""
    if role.isdigit():
        return role  # a plain token index is always allowed
    known = role_names(dataset)
    if role not in known:
        shown = ", ".join(key_roles(known)) or ", ".join(known[:20])
        raise InvalidInputError(
            f"Role '{role}' is not a position of task {task}; its roles are {shown} and slots "
            "such as BOS+2 (or give a token index, e.g. @5)."
        )
    return role


def role_positions(roles: Mapping[str, Any], role: str, n: int) -> torch.Tensor:
    """Per-example token index of `role` (a role name or a plain index)."""
    import torch

    if role.isdigit():
        return torch.full((n,), int(role), dtype=torch.long)
    return roles[role]
