"""A user's own task from a JSONL file of ``{clean, corrupt, answer, wrong_answer}`` records.

Each line is one example: the clean prompt, its counterfactual (same token length), and the
answer and wrong-answer strings exactly as the tokenizer should see them (GPT-2 BPE: " Mary",
with the space; the embedded word-level tokenizer: "Mary"). Metric: logit(answer) -
logit(wrong_answer). Every problem names its line and says what to fix.
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


def read_records(path: Path) -> list[dict[str, str]]:
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
        records.append({k: rec[k] for k in KEYS})
    if not records:
        raise TaskError(f"Task file {path} is empty: add one JSON object per line with keys "
                        "clean, corrupt, answer, wrong_answer.")
    return records


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
        exs = []
        for i in chosen:
            r = records[i]
            exs.append(Example(r["clean"], r["corrupt"], r["answer"], r["wrong_answer"], space=False))
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
