"""Induction: continue a repeated sequence of random tokens.

Clean: BOS, tokens t1..tL, then t1..tm again; the next token should be t(m+1). Counterfactual:
the same prompt with t(m+1) in the first copy replaced by another token w, so an induction
circuit predicts w instead. Metric: logit(t(m+1)) - logit(w) at the last position (positive when
the model copies from the clean first copy). L = ``length`` (default 10), m varies from 3 to L-1.
Tokens are distinct within a sequence and drawn from the ordinary (non-special) vocabulary.

Roles: ``A1`` the current token's first occurrence, ``B1`` the token after it (the one to
predict), ``A2`` the current token at the end; the rest are slots (``BOS+2``, ``B1+4``...).
"""

from __future__ import annotations

import random
from typing import Any

from catalog.errors import TaskError
from catalog.tasks.base import TaskDataset, TaskSpec, logit_diff, top1_is_answer
from catalog.tasks.examples import role_tensor
from catalog.tasks.roles import slot_roles
from catalog.tasks.tokens import Tokens


def token_pool(tokens: Tokens, limit: int = 20_000) -> list[int]:
    """Ordinary token ids to sample from: not special, at most the first ``limit`` ids."""
    special = set(getattr(tokens.tok, "all_special_ids", []) or [])
    vocab = len(tokens.tok)
    return [i for i in range(min(vocab, limit)) if i not in special]


def sequences(n: int, seed: int, pool: list[int], length: int = 10) -> list[tuple[list[int], list[int], int, int]]:
    """``n`` (clean ids, corrupt ids, answer, wrong) without BOS, deterministic from ``seed``."""
    if length < 4:
        raise TaskError(f"induction: length must be at least 4, got {length}.")
    if len(pool) < length + 1:
        raise TaskError(f"induction: the vocabulary has only {len(pool)} ordinary tokens.")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        seq = rng.sample(pool, length + 1)
        body, w = seq[:length], seq[length]
        m = rng.randrange(3, length)
        clean = body + body[:m]
        corrupt = list(clean)
        corrupt[m] = w
        out.append((clean, corrupt, body[m], w))
    return out


def build(model: Any, n: int, seed: int, length: int = 10) -> TaskDataset:
    """The induction dataset for ``model``'s tokenizer."""
    import torch

    tokens = Tokens(model)
    rows = sequences(n, seed, token_pool(tokens), length=length)
    clean = [[tokens.bos_id, *c] for c, _, _, _ in rows]
    corrupt = [[tokens.bos_id, *k] for _, k, _, _ in rows]
    width = max(len(r) for r in clean)
    # With BOS at 0 and m tokens repeated, A1 (= body[m-1]) sits at m, B1 at m + 1, A2 last.
    role_rows = [slot_roles(len(c), {_a1(c): "A1", _a1(c) + 1: "B1", len(c) - 1: "A2"}) for c in clean]
    role_names, role_ids = role_tensor(role_rows, width)
    decode = tokens.tok.decode
    return TaskDataset(
        task="induction", clean=tokens.pad(clean, width), corrupt=tokens.pad(corrupt, width),
        positions=torch.tensor([len(r) - 1 for r in clean], dtype=torch.long),
        answers=torch.tensor([a for _, _, a, _ in rows], dtype=torch.long),
        wrong_answers=torch.tensor([w for _, _, _, w in rows], dtype=torch.long),
        prompts=[decode(r[1:]) for r in clean], corrupt_prompts=[decode(r[1:]) for r in corrupt],
        metric_name="logit_diff", metric_fn=logit_diff, correct_fn=top1_is_answer,
        pad_id=tokens.pad_id, spec={"n": n, "seed": seed, "length": length},
        role_names=role_names, role_ids=role_ids,
    )


def _a1(row: list[int]) -> int:
    """Index of the first occurrence of the last token (BOS at 0)."""
    return row.index(row[-1], 1)


SPEC = TaskSpec(
    slug="induction",
    description="Induction: repeated random token sequences; predict the token that followed the "
                "current one in the first copy.",
    metric_name="logit_diff",
    metric_description="logit(next token of the first copy) - logit(the token the counterfactual put there)",
    counterfactual="the same sequence with that next token in the first copy replaced",
    builder=build,
    options={"length": "tokens in the repeated sequence (default 10)"},
)
