"""Attention patterns kept with a discovered circuit: what each of its heads attends to on a few
of the task's prompts, small enough to store and to show without torch.

A pattern is a square ``[query, key]`` matrix over the prompt's tokens up to the position where
the task reads its answer (padding is cut off), rounded to three decimals.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from catalog.naming import NodeKind, parse_node

#: Patterns are stored to this many decimals: enough to read, ~6 bytes a weight as JSON.
DECIMALS = 3


class PromptAttention(BaseModel):
    """One prompt: its tokens, the position the answer is read at, and each head's pattern."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    tokens: tuple[str, ...]
    read_position: int
    heads: dict[str, tuple[tuple[float, ...], ...]]

    @field_validator("heads")
    @classmethod
    def _heads_are_heads(cls, heads: dict[str, tuple[tuple[float, ...], ...]]) -> dict[str, tuple[tuple[float, ...], ...]]:
        for head in heads:
            if parse_node(head).kind is not NodeKind.ATTENTION:
                raise ValueError(f"'{head}' is not an attention head")
        return heads

    @model_validator(mode="after")
    def _square_and_finite(self) -> PromptAttention:
        n = len(self.tokens)
        if not 0 <= self.read_position < max(n, 1):
            raise ValueError(f"read position {self.read_position} is outside the {n} tokens")
        for head, rows in self.heads.items():
            if len(rows) != n or any(len(r) != n for r in rows):
                raise ValueError(f"{head}'s pattern is not {n} x {n}")
            if any(not math.isfinite(w) or not -1e-6 <= w <= 1 + 1e-6 for r in rows for w in r):
                raise ValueError(f"{head}'s pattern holds a weight outside [0, 1]")
        return self

    def top(self, head: str, k: int = 3, query: int | None = None) -> list[tuple[int, str, float]]:
        """The `k` tokens `head` attends to most from `query` (default: the read position), as
        (position, token, weight), strongest first.

        >>> p = PromptAttention(prompt="a b", tokens=("a", "b"), read_position=1,
        ...                     heads={"a0.h0": ((1.0, 0.0), (0.25, 0.75))})
        >>> p.top("a0.h0")
        [(1, 'b', 0.75), (0, 'a', 0.25)]
        """
        row = self.heads[head][self.read_position if query is None else query]
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
        return [(i, self.tokens[i], row[i]) for i in order]


class AttentionPatterns(BaseModel):
    """The patterns of a circuit's heads on the first few prompts of its task."""

    model_config = ConfigDict(frozen=True)

    heads: tuple[str, ...]
    prompts: tuple[PromptAttention, ...]

    @model_validator(mode="after")
    def _every_prompt_has_every_head(self) -> AttentionPatterns:
        for p in self.prompts:
            if set(p.heads) != set(self.heads):
                raise ValueError("every prompt must carry a pattern for each head")
        return self
