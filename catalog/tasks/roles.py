"""Roles: the names a task gives to the positions of each prompt.

Prompts of different templates have different lengths, so a position index means nothing across
examples; a role does. Each task marks its key tokens (IOI: ``IO``, ``S1``, ``S2``; Colored
Objects: ``QOBJ``, ...), the read position is ``END`` and BOS is ``BOS``. Every other position
gets a slot name relative to the nearest key token before it (``S1+1``, ``S1+2``, ``BOS+3``), so
every position of a prompt has exactly one role and a component's effects summed over its roles
give back its all-position effect. A task that marks nothing (a user's file without positions)
gets ``END`` at the read position and ``OTHER`` everywhere else.

No torch here: roles are plain lists of names; `catalog.tasks.examples.assemble` turns them into
the dataset's ``role_ids`` tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from catalog.errors import TaskError
from catalog.naming import check_role

BOS = "BOS"
END = "END"
OTHER = "OTHER"


def slot_roles(length: int, named: Mapping[int, str]) -> list[str]:
    """A role for each of `length` positions (BOS at 0, the last is the read position).

    Key positions take their name; the last position is ``END`` unless named; every other one is
    ``ANCHOR+k``, k tokens after the nearest named position (or BOS) before it.

    >>> slot_roles(7, {2: "IO", 4: "S1"})
    ['BOS', 'BOS+1', 'IO', 'IO+1', 'S1', 'S1+1', 'END']
    >>> slot_roles(4, {3: "A2"})
    ['BOS', 'BOS+1', 'BOS+2', 'A2']
    """
    if length < 1:
        return []
    out: list[str] = []
    anchor, at = BOS, 0
    for t in range(length):
        if t in named:
            anchor, at = named[t], t
            out.append(anchor)
        elif t == 0:
            out.append(BOS)
        elif t == length - 1:
            out.append(END)
        else:
            out.append(f"{anchor}+{t - at}")
    return out


def plain_roles(length: int) -> list[str]:
    """``END`` at the read position, ``OTHER`` before it (BOS included).

    >>> plain_roles(3)
    ['OTHER', 'OTHER', 'END']
    """
    return [OTHER] * (length - 1) + [END] if length else []


def char_offsets(tok: Any, text: str) -> list[tuple[int, int]]:
    """Character span of each token of `text` (no special tokens), from a fast tokenizer."""
    try:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise TaskError(f"Roles need a tokenizer that reports character offsets (a fast Hugging Face "
                        f"tokenizer); this one cannot ({exc}).") from None
    return [(int(s), int(e)) for s, e in enc["offset_mapping"]]


def token_at(offsets: Sequence[tuple[int, int]], char: int) -> int:
    """Index (BOS = 0) of the token covering character `char`, or the first starting after it.

    GPT-2-style tokens may include the space before a word; word-level tokens start at the word.
    """
    for i, (s, e) in enumerate(offsets):
        if s <= char < e or s >= char:
            return i + 1
    raise TaskError(f"No token covers character {char} of the prompt.")


def named_positions(tok: Any, text: str, marks: Sequence[tuple[str, int]]) -> dict[int, str]:
    """Token index (BOS = 0) -> role for each ``(role, character index)`` mark in `text`."""
    offsets = char_offsets(tok, text)
    named: dict[int, str] = {}
    for role, char in marks:
        check_role(role)
        t = token_at(offsets, char)
        if t in named and named[t] != role:
            raise TaskError(f"Roles {named[t]} and {role} fall on the same token of {text!r}; give "
                            "each role its own token.")
        if role in named.values() and named.get(t) != role:
            raise TaskError(f"Role {role} is marked twice in {text!r}; a role names one position per prompt.")
        named[t] = role
    return named


def check_known(roles: Sequence[str], known: Sequence[str], task: str) -> None:
    """Raise a one-line error for a role the task does not have, listing those it has."""
    missing = [r for r in roles if r not in known]
    if missing:
        shown = ", ".join(list(known)[:30]) + (" ..." if len(known) > 30 else "")
        raise TaskError(f"Task {task} has no role {', '.join(missing)}. Its roles: {shown}.")
