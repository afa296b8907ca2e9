"""Greater-than (Hanna, Liu, Variengien 2023, arXiv 2305.00586).

"The war lasted from the year 1732 to the year 17" -> a two-digit year after 32. The
counterfactual starts the span at year XX01, so no year is excluded. Metric: probability
difference, sum of p(y) over two-digit tokens y > YY minus the sum over y <= YY. An example is
correct when the top-1 token over the whole vocabulary is a two-digit year greater than YY.
``answers`` holds YY+1 and ``wrong_answers`` YY, for methods that want a logit contrast.

As in Hanna et al., years whose digits this tokenizer does not split as "XX" + "YY" are not
sampled (and none being left is an error). ``split="test"`` draws only (noun, YY) combinations
kept out of training.

Roles: ``YY`` the start year's last two digits, ``END`` the last token; the rest are slots.
"""

from __future__ import annotations

import functools
import random
from typing import Any

from catalog.errors import TaskError
from catalog.tasks.base import TaskDataset, TaskSpec
from catalog.tasks.examples import SPLITS, Example, assemble, check_choice, held_out
from catalog.tasks.tokens import Tokens

NOUNS = ("war", "reign", "journey", "expedition", "siege", "treaty", "trial", "voyage", "dynasty",
         "campaign", "project", "study", "rivalry", "marriage", "epidemic", "tour", "plague",
         "dispute", "program", "friendship")
CENTURIES = tuple(range(11, 18))
YEARS = tuple(range(2, 99))  # YY: 02..98, so some year lies on either side


def prompt(noun: str, century: int, yy: int) -> str:
    return f"The {noun} lasted from the year {century}{yy:02d} to the year {century}"


def year_tokens(tokens: Tokens) -> list[int]:
    """Ids of the 100 two-digit tokens "00".."99" (glued to the century, no space)."""
    return [tokens.word(f"{y:02d}", space=False, what="two-digit year") for y in range(100)]


def splits_cleanly(tokens: Tokens, century: int, yy: int) -> bool:
    """Whether " {XX}{YY}" tokenizes as " {XX}" followed by "{YY}" for this tokenizer."""
    return tokens.encode(f" {century}{yy:02d}") == tokens.encode(f" {century}") + tokens.encode(f"{yy:02d}")


@functools.cache
def _combos(split: str) -> tuple[tuple[str, int, int], ...]:
    """Every (noun, century, YY) in a split."""
    return tuple((noun, c, yy) for noun in NOUNS for c in CENTURIES for yy in YEARS
                 if split == "all" or held_out("greater-than", noun, yy) == (split == "test"))


def examples(n: int, seed: int, split: str = "all",
             usable: set[tuple[int, int]] | None = None) -> list[Example]:
    """``n`` greater-than examples as text; ``usable`` limits (century, YY) to those a tokenizer
    splits cleanly."""
    check_choice("greater-than", "split", split, SPLITS)
    rng = random.Random(seed)
    combos = [x for x in _combos(split) if usable is None or {(x[1], x[2]), (x[1], 1)} <= usable]
    if not combos:
        raise TaskError("greater-than: no year splits into two tokens 'XX' + 'YY' for this tokenizer.")
    out = []
    for _ in range(n):
        noun, c, yy = rng.choice(combos)
        text = prompt(noun, c, yy)
        yy_at = text.index(f"{c}{yy:02d}") + len(str(c))
        out.append(Example(text, prompt(noun, c, 1), f"{yy + 1:02d}", f"{yy:02d}",
                           space=False, meta={"yy": yy}, marks=(("YY", yy_at),)))
    return out


def prob_diff(final: Any, ds: TaskDataset) -> Any:
    """sum p(y > YY) - sum p(y <= YY) over the two-digit year tokens."""
    import torch

    probs = final.softmax(dim=-1)[:, ds.shared["year_ids"].to(final.device)]  # [B, 100]
    years = torch.arange(100, device=final.device)
    later = years[None, :] > ds.extra["yy"].to(final.device)[:, None]
    return (probs * later).sum(-1) - (probs * ~later).sum(-1)


def top1_later_year(final: Any, ds: TaskDataset) -> Any:
    """The arg-max over the whole vocabulary is a two-digit year after YY."""
    year_ids = ds.shared["year_ids"].to(final.device)
    top = final.argmax(dim=-1)
    match = top[:, None] == year_ids[None, :]  # [B, 100]
    year = match.float().argmax(dim=-1)
    return match.any(dim=-1) & (year > ds.extra["yy"].to(final.device))


def build(model: Any, n: int, seed: int, split: str = "all") -> TaskDataset:
    """The greater-than dataset for ``model``'s tokenizer."""
    tokens = Tokens(model)
    ids = year_tokens(tokens)
    usable = {(c, yy) for c in CENTURIES for yy in range(100) if splits_cleanly(tokens, c, yy)}
    exs = examples(n, seed, split=split, usable=usable)
    return assemble("greater-than", model, exs, {"n": n, "seed": seed, "split": split},
                    metric_name="prob_diff", metric_fn=prob_diff, correct_fn=top1_later_year,
                    extra={"yy": [ex.meta["yy"] for ex in exs]}, shared={"year_ids": ids})


SPEC = TaskSpec(
    slug="greater-than",
    description="Greater-than (Hanna et al. 2023): 'The war lasted from the year 1732 to the year "
                "17' -> a two-digit year after 32.",
    metric_name="prob_diff",
    metric_description="sum of p(year > YY) - sum of p(year <= YY) over the 100 two-digit tokens",
    counterfactual="the same prompt starting at year XX01",
    builder=build,
    options={"split": "all | train | test (held-out noun-year pairs)"},
)
