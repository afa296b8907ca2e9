"""A user's own task from a JSONL file of ``{clean, corrupt, answer, wrong_answer}`` records.

Each line is one example: the clean prompt, its counterfactual (same token length), and the
answer and wrong-answer strings exactly as the tokenizer should see them (GPT-2 BPE: " Mary",
with the space; the embedded word-level tokenizer: "Mary"). Metric: logit(answer) -
logit(wrong_answer). Every problem names its line and says what to fix.

An optional ``positions`` object names key tokens as roles for position-resolved discovery:
``{"S2": 7}`` is the token at index 7 of the clean prompt (0 = the first token after BOS; -1 the
last), ``{"S2": "John gave"}`` the token where that text first starts in the clean prompt. The
other positions are slots after the nearest named one (``S2+1``), the last token ``END``.
Without ``positions`` a record gets ``END`` at its last token and ``OTHER`` everywhere else.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from catalog.errors import TaskError
from catalog.tasks.base import TaskDataset, TaskSpec
from catalog.tasks.examples import Example, assemble

KEYS = ("clean", "corrupt", "answer", "wrong_answer")


def read_records(path: Path) -> list[dict[str, Any]]:
    """The validated records of a JSONL task file."""
    if not path.is_file():
        raise TaskError(f"Task file {path} does not exist.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"Cannot read task file {path}: {exc}. It must be UTF-8 JSONL.") from None
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path}, line {lineno}: not valid JSON ({exc.msg}). Each line must be one "
                            "JSON object with keys clean, corrupt, answer, wrong_answer.") from None
        if not isinstance(rec, dict):
            raise TaskError(f"{path}, line {lineno}: expected a JSON object, got {type(rec).__name__}.")
        missing = [k for k in KEYS if k not in rec]
        if missing:
            raise TaskError(f"{path}, line {lineno}: missing key(s) {', '.join(missing)}; every record "
                            "needs clean, corrupt, answer and wrong_answer.")
        bad = [k for k in KEYS if not isinstance(rec[k], str) or not rec[k]]
        if bad:
            raise TaskError(f"{path}, line {lineno}: {', '.join(bad)} must be non-empty strings.")
        kept = {k: rec[k] for k in KEYS}
        if "positions" in rec:
            kept["positions"] = _check_positions(path, lineno, rec["positions"])
        records.append(kept)
    if not records:
        raise TaskError(f"Task file {path} is empty: add one JSON object per line with keys "
                        "clean, corrupt, answer, wrong_answer.")
    return records


def _check_positions(path: Path, lineno: int, value: Any) -> dict[str, int | str]:
    """A record's ``positions``: role name -> token index or marker text."""
    from catalog.errors import InvalidInputError
    from catalog.naming import check_role

    if not isinstance(value, dict):
        raise TaskError(f"{path}, line {lineno}: positions must be an object such as "
                        '{"S2": 7} or {"S2": "John gave"}.')
    for role, where in value.items():
        try:
            check_role(role)
        except InvalidInputError as exc:
            raise TaskError(f"{path}, line {lineno}: {exc}") from None
        if isinstance(where, bool) or not isinstance(where, (int, str)) or where == "":
            raise TaskError(f"{path}, line {lineno}: position {role} must be a token index or a "
                            "non-empty marker text.")
    return value


def _marks(path: Path, lineno: int, tokens: Any, clean: str,
           positions: dict[str, int | str]) -> tuple[tuple[str, int], ...]:
    """Character marks for a record's named positions (indices are turned into characters)."""
    from catalog.tasks.roles import char_offsets

    offsets = char_offsets(tokens.tok, clean)
    marks = []
    for role, where in positions.items():
        if isinstance(where, str):
            char = clean.find(where)
            if char < 0:
                raise TaskError(f"{path}, record {lineno}: marker {where!r} for position {role} is not "
                                "in the clean prompt.")
        else:
            if not -len(offsets) <= where < len(offsets):
                raise TaskError(f"{path}, record {lineno}: position {role} = {where} is outside the clean "
                                f"prompt's {len(offsets)} tokens.")
            char = offsets[where][0]
        marks.append((role, char))
    return tuple(marks)


def task_from_file(path: str | Path) -> TaskSpec:
    """A `TaskSpec` for a JSONL task file; the file is read and checked now, tokenized on build.

    ``build(model, n, seed)`` uses every record when ``n`` covers the file, otherwise a
    seeded sample of ``n`` records kept in file order.
    """
    path = Path(path)
    records = read_records(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    slug = path.stem

    def build(model: Any, n: int, seed: int) -> TaskDataset:
        chosen = list(range(len(records)))
        if n < len(records):
            chosen = sorted(random.Random(seed).sample(chosen, n))
        from catalog.tasks.tokens import Tokens

        tokens = Tokens(model)
        exs = []
        for i in chosen:
            r = records[i]
            marks = _marks(path, i + 1, tokens, r["clean"], r["positions"]) if "positions" in r else ()
            exs.append(Example(r["clean"], r["corrupt"], r["answer"], r["wrong_answer"], space=False,
                               marks=marks))
        try:
            return assemble(slug, model, exs, {"file_sha256": digest, "n": len(chosen), "seed": seed},
                            metric_name="logit_diff")
        except TaskError as exc:
            raise TaskError(f"{path}: {exc}") from None

    return TaskSpec(
        slug=slug,
        description=f"User task from {path.name} ({len(records)} records)",
        metric_name="logit_diff",
        metric_description="logit(answer) - logit(wrong_answer) at the last prompt token",
        counterfactual="the corrupt prompt of each record",
        builder=build,
    )
